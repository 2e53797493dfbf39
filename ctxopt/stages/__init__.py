"""Pipeline stages, one per file, and the registry that names them.

``STAGES`` is the single list of stage names: configs, the CLI and every "choose from" message
read it, so they cannot drift. Stage modules import heavy dependencies only inside ``run``.
"""

from ctxopt.stages.base import Stage, check_stage, stage_config
from ctxopt.stages.fit import Fit

STAGES: dict[str, type] = {
    Fit.name: Fit,
}

__all__ = ["STAGES", "Fit", "Stage", "check_stage", "stage_config"]
