"""Hydra callbacks of the train config."""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, read_write


class OneSweepFolder(Callback):
    """Name a multirun's folder once, from the sweep's own config, and keep every job in it.

    The default ``task_name`` reads the chosen options (``${hydra:runtime.choices.model}``), and Hydra resolves
    ``hydra.sweep.dir`` (and a sweeper's storage) before any job has set ``HydraConfig``: this sets it to the
    sweep's composed config first. The resolved folder is then pinned as a Hydra override, so a job whose own
    ``task_name`` differs (``-m model=a,b``) still lands in ``<sweep>/<job number>``.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)
        folder = str(config.hydra.sweep.dir).replace("\\", "\\\\").replace("'", "\\'")
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.append(f"hydra.sweep.dir='{folder}'")
