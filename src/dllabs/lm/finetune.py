"""Full or LoRA fine-tuning set-up of a Hugging Face causal LM, parameter counts, and exports."""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from dllabs.errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("full", "lora")
ADAPTER_DIR = "lora_adapter"
MODEL_DIR = "hf_model"


def method_of(finetune: Mapping[str, Any] | None) -> str:
    """``full`` (every weight trains; also when no fine-tune config is given) or ``lora``."""
    method = str((finetune or {}).get("method", "full"))
    if method not in METHODS:
        raise ConfigError(f"finetune.method must be one of {METHODS}, got {method!r} (pick finetune=full|lora)")
    return method


def prepare(model: nn.Module, finetune: Mapping[str, Any] | None) -> nn.Module:
    """The model to train: itself with every weight trainable (full), or wrapped by peft with LoRA adapters.

    LoRA options are ``peft.LoraConfig`` arguments (r, lora_alpha, lora_dropout, target_modules, bias, ...).
    """
    method = method_of(finetune)
    if method == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    options = {key: value for key, value in dict(finetune or {}).items() if key != "method"}
    try:
        config = LoraConfig(task_type="CAUSAL_LM", **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid LoRA option in finetune ({error}); options are peft.LoraConfig arguments") from error
    try:
        with warnings.catch_warnings():  # peft 0.21 calls transformers 5's deprecated is_gradient_checkpointing
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
            return get_peft_model(model, config)
    except ValueError as error:
        names = sorted({name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name})
        raise ConfigError(
            f"LoRA could not wrap finetune.target_modules={options.get('target_modules')} ({error}). "
            f"Module names in this model: {', '.join(names[:30])}"
        ) from error


def parameter_counts(model: nn.Module) -> dict[str, float]:
    """Trainable and total parameter counts (shared/tied weights counted once)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": trainable, "total": total, "trainable_percent": 100.0 * trainable / max(1, total)}


def is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def export(model: nn.Module, tokenizer: Any, folder: Path) -> dict[str, str]:
    """Save what a user can reload with ``from_pretrained``.

    LoRA: the adapters (``lora_adapter/``, via peft's ``save_pretrained``) and the merged weights (``hf_model/``,
    a plain model with the adapters folded in). Full fine-tuning: the model (``hf_model/``). The tokenizer is
    saved next to each so every folder works on its own.
    """
    folder = Path(folder)
    written: dict[str, str] = {}
    if is_peft(model):
        adapter_dir = folder / ADAPTER_DIR
        model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
        written["adapter"] = str(adapter_dir)
        plain = copy.deepcopy(model).merge_and_unload()
    else:
        plain = model
    model_dir = folder / MODEL_DIR
    plain.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    written["model"] = str(model_dir)
    log.info("exported %s", written)
    return written


def load_adapter(base: nn.Module, adapter_dir: str | Path) -> nn.Module:
    """``base`` with the LoRA adapters saved in ``adapter_dir`` (inference mode)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(adapter_dir))
