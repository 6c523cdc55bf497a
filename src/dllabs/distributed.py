"""DDP with spawned workers that hands the callbacks' state back to the main process.

Lightning's ``ddp_spawn`` returns only rank 0's ``callback_metrics`` and best checkpoint path to the main process,
where the run's record (:class:`~dllabs.callbacks.run_record.RunRecord`) is written: its per-epoch history and
everything else a callback kept would be lost. :class:`SpawnDDPStrategy` also carries every callback's
``state_dict`` (plain data and tensors, the same state a checkpoint holds) from rank 0 back and loads it into the
main process's callbacks. ``conf/trainer/ddp_spawn.yaml`` selects it.
"""

from __future__ import annotations

import io
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

_STATES = "dllabs_callback_states"


class _CallbackStateLauncher(_MultiProcessingLauncher):
    def get_extra_results(self, trainer: L.Trainer) -> dict[str, Any]:
        extra = super().get_extra_results(trainer)
        buffer = io.BytesIO()
        torch.save({callback.state_key: callback.state_dict() for callback in trainer.callbacks}, buffer)
        extra[_STATES] = buffer.getvalue()
        return extra

    def update_main_process_results(self, trainer: L.Trainer, extra: dict[str, Any]) -> None:
        super().update_main_process_results(trainer, extra)
        if _STATES not in extra:
            return
        states = torch.load(io.BytesIO(extra[_STATES]), weights_only=True)
        for callback in trainer.callbacks:
            state = states.get(callback.state_key)
            if state:
                callback.load_state_dict(state)


class SpawnDDPStrategy(DDPStrategy):
    """``DDPStrategy(start_method="spawn")`` whose main process ends ``fit`` with rank 0's callback states."""

    def __init__(
        self,
        start_method: Literal["spawn", "fork", "forkserver"] = "spawn",  # popen re-runs the script: trainer=ddp
        find_unused_parameters: bool = False,  # passed on to torch's DistributedDataParallel
        **kwargs: Any,
    ) -> None:
        super().__init__(start_method=start_method, find_unused_parameters=find_unused_parameters, **kwargs)

    def _configure_launcher(self) -> None:
        self._launcher = _CallbackStateLauncher(self, start_method=self._start_method)
