"""Tier tuning: evaluation sets, recall curves, and tier limits recommended from them."""

from ctxopt.tune.evalset import Case, load_evalset, recall_curve, save_evalset
from ctxopt.tune.recommend import DEFAULT_TARGETS, Recommendation, recommend, tuned_tiers

__all__ = ["DEFAULT_TARGETS", "Case", "Recommendation", "load_evalset", "recall_curve", "recommend",
           "save_evalset", "tuned_tiers"]
