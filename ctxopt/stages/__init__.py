"""Pipeline stages, one per file, and the registry that names them.

``STAGES`` is the single list of stage names: configs, the CLI and every "choose from" message
read it, so they cannot drift. Stage modules import heavy dependencies only inside ``run``.
"""

from ctxopt.stages.base import Stage, check_stage, stage_config
from ctxopt.stages.fit import Fit
from ctxopt.stages.prune_chunks import PruneChunks
from ctxopt.stages.prune_history import PruneHistory
from ctxopt.stages.prune_tool_output import PruneToolOutput
from ctxopt.stages.retrieve import Retrieve
from ctxopt.stages.session import SessionLayout
from ctxopt.stages.summarize import Summarize

STAGES: dict[str, type] = {
    Fit.name: Fit,
    PruneChunks.name: PruneChunks,
    PruneHistory.name: PruneHistory,
    PruneToolOutput.name: PruneToolOutput,
    Retrieve.name: Retrieve,
    SessionLayout.name: SessionLayout,
    Summarize.name: Summarize,
}

__all__ = ["STAGES", "Fit", "Stage", "check_stage", "stage_config"]
