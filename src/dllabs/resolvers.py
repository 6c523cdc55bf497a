"""The project's OmegaConf resolvers, registered in one place: :func:`register_resolvers`, called by the entry
wrapper every command runs under (:func:`dllabs.entry.hydra_main`) before Hydra composes a config; code that
composes configs itself (tests, benchmarks) calls it too.

- ``${dllabs.cpu_precision:<setting>,<accelerator>}``: the Trainer's precision (``conf/trainer/default.yaml``)
  from the lab's top-level ``cpu_precision`` (``auto`` = bf16-mixed on a CPU with native bf16, fp32 elsewhere;
  a concrete precision as it is), see :func:`dllabs.hardware.cpu_precision`.
- ``${dllabs.run_name:<fallback>}``: the TensorBoard logger's version (``conf/logger/tensorboard.yaml``), runs
  named by what sets them apart, see :func:`dllabs.reporting.hparams.run_name`.
- ``${dllabs.config_subdir:.hydra}``: ``hydra.output_subdir`` (``conf/hydra/default.yaml``), None for a job whose
  folder holds a finished run (its ``.hydra/`` is not rewritten), see :func:`dllabs.job_folder.config_subdir`.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from dllabs.job_folder import config_subdir
from dllabs.reporting.hparams import run_name


def cpu_precision(setting: str, accelerator: str) -> str:
    # imported when a config is resolved, not when one is composed or printed (--cfg job): it imports torch
    from dllabs.hardware import cpu_precision as choose

    return choose(setting, accelerator)


def register_resolvers() -> None:
    """Register every ``dllabs.*`` resolver (again: ``replace=True``, so calling twice is harmless)."""
    OmegaConf.register_new_resolver("dllabs.cpu_precision", cpu_precision, replace=True)
    OmegaConf.register_new_resolver("dllabs.run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("dllabs.config_subdir", config_subdir, replace=True)
