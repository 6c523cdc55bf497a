"""The project's OmegaConf resolvers, registered in one place: :func:`register_resolvers` (called by the commands
before any config is resolved).

- ``${dllabs.cpu_precision:<setting>,<accelerator>}``: the Trainer's precision (``conf/trainer/default.yaml``)
  from the lab's top-level ``cpu_precision`` (``auto`` = bf16-mixed on a CPU with native bf16, fp32 elsewhere;
  a concrete precision as it is), see :func:`dllabs.hardware.cpu_precision`.
"""

from __future__ import annotations

from omegaconf import OmegaConf


def cpu_precision(setting: str, accelerator: str) -> str:
    # imported when a config is resolved, not when one is composed or printed (--cfg job): it imports torch
    from dllabs.hardware import cpu_precision as choose

    return choose(setting, accelerator)


def register_resolvers() -> None:
    """Register every ``dllabs.*`` resolver (again: ``replace=True``, so calling twice is harmless)."""
    OmegaConf.register_new_resolver("dllabs.cpu_precision", cpu_precision, replace=True)
