"""``hydra/sweeper=optuna``: an Optuna search as a Hydra sweeper (settings in ``conf/hydra/sweeper/optuna.yaml``).

The search itself is :class:`dllabs.search.sweep.OptunaSearch`: pruning, workers sharing a study through its
storage, heartbeats, ``trials.csv``, ``optimization_results.yaml`` and Optuna's figures. Hydra imports this
module at every start-up to discover plugins, so it imports Optuna only when a sweep starts.
"""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class OptunaSweeper(Sweeper):
    """Hydra's ``Sweeper``: ``setup`` makes the launcher, ``sweep`` runs this worker's share of the study."""

    def __init__(self, **settings: Any) -> None:
        self.settings = OmegaConf.create(settings)
        self.launcher = None
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from dllabs.search.sweep import OptunaSearch  # Optuna, SQLAlchemy, matplotlib: only when sweeping

        return OptunaSearch(self.settings, self.launcher, self.config).run(arguments)
