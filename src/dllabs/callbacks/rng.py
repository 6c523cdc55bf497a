"""Save the global torch RNG state in checkpoints so a resumed run draws the same random numbers."""

from __future__ import annotations

import lightning as L
import torch


class RNGState(L.Callback):
    """Checkpoint and restore the CPU (and CUDA) RNG state: augmentation and dropout continue exactly."""

    def state_dict(self) -> dict:
        state = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
