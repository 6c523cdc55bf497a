"""``hydra/launcher=local``: submitit's local launcher, each job in its own process pinned to its own GPU(s).

A machine with K GPUs runs K jobs at once (``jobs_per_gpu`` = M: M small jobs share each GPU; ``gpus_per_job``
= G: each job gets G GPUs, e.g. for ``trainer=ddp_spawn``); a job starts as soon as a slot is free, with
``CUDA_VISIBLE_DEVICES`` set to its slot's GPU(s), so it sees them as ``cuda:0``... Works for a grid sweep
(Hydra's basic sweeper hands over all jobs at once) and for the Optuna sweeper (one job per call, from
``n_jobs`` threads; ``capacity`` is its default ``n_jobs``). On a machine without GPUs every job starts at once
and sees none. Logs of each job in ``<sweep dir>/.submitit/<job id>/``.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def visible_gpus() -> list[int]:
    """This machine's GPUs as CUDA numbers them for a child process: ``CUDA_VISIBLE_DEVICES`` when set (indices
    only), else every device torch counts."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        names = [name.strip() for name in listed.split(",") if name.strip()]
        if not all(name.isdigit() for name in names):
            raise ValueError(
                f"CUDA_VISIBLE_DEVICES={listed}: give device indices, or hydra.launcher.gpus=[0,1,...]"
            )
        return [int(name) for name in names]
    import torch  # the launcher's only use of torch; counting devices does not start CUDA in this process

    return list(range(torch.cuda.device_count()))


def gpu_slots(gpus: int | Sequence[int] | None, jobs_per_gpu: int = 1, gpus_per_job: int = 1) -> list[tuple[int, ...]]:
    """The GPUs of each job slot: ``gpus`` (a count, the device indices, or None for :func:`visible_gpus`) in
    groups of ``gpus_per_job``, each group ``jobs_per_gpu`` times."""
    if jobs_per_gpu < 1 or gpus_per_job < 1:
        raise ValueError(f"jobs_per_gpu={jobs_per_gpu} and gpus_per_job={gpus_per_job} must be at least 1")
    if gpus_per_job > 1 and jobs_per_gpu > 1:
        raise ValueError("jobs_per_gpu > 1 shares one GPU between jobs: give gpus_per_job=1 with it")
    devices = visible_gpus() if gpus is None else list(range(gpus)) if isinstance(gpus, int) else list(gpus)
    groups = [tuple(devices[i : i + gpus_per_job]) for i in range(0, len(devices) - gpus_per_job + 1, gpus_per_job)]
    if devices and not groups:
        raise ValueError(f"gpus_per_job={gpus_per_job}, but this machine shows {len(devices)} GPU(s): {devices}")
    return [group for group in groups for _ in range(jobs_per_gpu)]


class GpuSlotsLauncher(BaseSubmititLauncher):
    """Submitit's local launcher with one job per GPU slot at a time (see the module)."""

    _EXECUTOR = "local"

    def __init__(
        self, gpus: int | Sequence[int] | None = None, jobs_per_gpu: int = 1, gpus_per_job: int = 1, **params: Any
    ) -> None:
        super().__init__(**params)
        gpus = OmegaConf.to_container(gpus) if OmegaConf.is_config(gpus) else gpus
        self.slots = gpu_slots(gpus, jobs_per_gpu, gpus_per_job)
        self._free: queue.Queue[tuple[int, ...]] = queue.Queue()
        for slot in self.slots:
            self._free.put(slot)

    def __getstate__(self) -> dict[str, Any]:
        """What a job's process gets (the launcher is the job's callable): not the parent's slot queue."""
        return {key: value for key, value in self.__dict__.items() if key != "_free"}

    @property
    def capacity(self) -> int | None:
        """Jobs at once: the number of GPU slots; None (no limit) without GPUs."""
        return len(self.slots) or None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Local sweep output dir: %s (%s)", sweep_dir,
                 f"{len(self.slots)} job slot(s) on GPUs {self.slots}" if self.slots else "no GPU: all jobs at once")
        jobs = [(list(overrides), initial_job_idx + i) for i, overrides in enumerate(job_overrides)]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            return list(pool.map(lambda job: self._run_on_a_slot(*job), jobs))

    def _run_on_a_slot(self, overrides: list[str], idx: int) -> JobReturn:
        slot = self._free.get() if self.slots else ()
        try:
            executor = self._executor()
            executor.update_parameters(gpus_per_node=len(slot), visible_gpus=list(slot))
            log.info("\t#%d on GPU %s: %s", idx, ",".join(map(str, slot)) or "none", " ".join(filter_overrides(overrides)))
            job = executor.submit(self, overrides, "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state())
            return job.results()[0]
        finally:
            if self.slots:
                self._free.put(slot)

    def _executor(self) -> Any:
        """Submitit's local executor with this launcher's settings (those it does not use are ignored)."""
        import submitit  # as submitit's own launcher: not at Hydra's plugin discovery

        init = {"max_num_timeout": self.params["max_num_timeout"]} if "max_num_timeout" in self.params else {}
        executor = submitit.LocalExecutor(folder=self.params["submitit_folder"], **init)
        executor.update_parameters(
            **{key: value for key, value in self.params.items() if key not in {"submitit_folder", "max_num_timeout"}}
        )
        return executor
