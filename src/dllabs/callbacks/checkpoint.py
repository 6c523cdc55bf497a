"""Lightning's ModelCheckpoint that keeps a resumed run's best checkpoint when it resumes into a new folder."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger("dllabs")


class ResumableModelCheckpoint(ModelCheckpoint):
    """A run resumed from another run's checkpoint (the usual case: ``ckpt_path=<old run>/.../last.ckpt`` writes
    into a new run folder) keeps the interrupted run's best scores and files.

    Lightning restores only ``best_model_path`` when the checkpoint folder changed, so the best epoch before
    the restart was forgotten and "test the best checkpoint" picked among the epochs after it. Here the
    interrupted run's best checkpoints are copied into this run's folder and their scores restored with them.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old_dir = state_dict.get("dirpath")
        if old_dir is None or self.dirpath is None or Path(old_dir).resolve() == Path(self.dirpath).resolve():
            super().load_state_dict(state_dict)
            return
        moved: dict[str, str] = {}
        for old_path in state_dict.get("best_k_models", {}):
            source = Path(old_path)
            if not source.exists():
                log.warning("best checkpoint %s of the resumed run is gone; its score is dropped", source)
                continue
            target = Path(self.dirpath) / source.name
            if rank_zero_only.rank == 0:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
            moved[old_path] = str(target)
        self.best_k_models = {moved[p]: score for p, score in state_dict["best_k_models"].items() if p in moved}
        if self.best_k_models:
            pick = max if self.mode == "max" else min
            self.best_model_path = pick(self.best_k_models, key=self.best_k_models.get)
            self.best_model_score = self.best_k_models[self.best_model_path]
            worst = min if self.mode == "max" else max
            self.kth_best_model_path = worst(self.best_k_models, key=self.best_k_models.get)
            self.kth_value = self.best_k_models[self.kth_best_model_path]
            log.info("carried the resumed run's best checkpoint into %s", self.best_model_path)
