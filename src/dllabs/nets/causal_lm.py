"""The GPT-2 lab's net: a Hugging Face causal LM, pretrained or randomly initialised, with LoRA applied while building.

``causal_lm(...)`` returns a plain ``nn.Module`` (``AutoModelForCausalLM``, or the peft model wrapping it for LoRA)
that takes ``input_ids``/``attention_mask`` and returns an output with ``.logits``. The tokenizer is not part of
the net: it belongs to the data module (``data.tokenizer``).

``lora_trainable_parameters`` counts LoRA's trainable parameters from a model config alone (a meta-device model,
no weights), e.g. 2,359,296 for r 64 on ``c_attn`` of the real ``gpt2`` shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from annotated_types import Predicate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from dllabs.errors import ConfigError
from dllabs.lm import finetune as ft
from dllabs.lm.pretrained import build_causal_lm, load_causal_lm

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """Config nodes as plain dicts/lists (peft and transformers want plain data)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def hub_name_or_folder(name: str) -> bool:
    """a hub name (e.g. gpt2) or an existing folder written by save_pretrained."""
    return not name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().exists()


def causal_lm(
    pretrained: Annotated[str, Predicate(hub_name_or_folder)] | None = "gpt2",
    architecture: Mapping[str, Any] | None = None,
    finetune: Mapping[str, Any] | None = None,
    dtype: Literal["float32", "float64", "float16", "bfloat16", "auto"] | None = None,
    local_files_only: bool = False,
) -> nn.Module:
    """The model to train.

    ``pretrained`` is a hub name (``gpt2``) or a ``save_pretrained`` folder; ``architecture`` instead builds a
    randomly initialised model from config values (``{model_type: gpt2, n_layer: 2, ...}``; ``vocab_size``
    defaults to the model type's own, 50,257 for GPT-2). ``finetune`` is ``{method: full}`` or
    ``{method: lora, r, lora_alpha, lora_dropout, target_modules, ...}`` (peft ``LoraConfig`` arguments).
    """
    architecture = _plain(architecture)
    finetune = _plain(finetune)
    if architecture:
        if pretrained:
            raise ConfigError("set either model.net.pretrained (load weights) or model.net.architecture (random init)")
        base = build_causal_lm(architecture, dtype=dtype)
    else:
        base = load_causal_lm(pretrained, dtype=dtype, local_files_only=local_files_only)
    net = ft.prepare(base, finetune).train()  # from_pretrained returns eval mode (dropout off)
    counts = ft.parameter_counts(net)
    log.info("%s fine-tuning: %d trainable of %d parameters (%.2f%%)", ft.method_of(finetune), counts["trainable"],
             counts["total"], counts["trainable_percent"])
    return net


def lora_trainable_parameters(lora: Mapping[str, Any], architecture: Mapping[str, Any] | None = None) -> int:
    """Trainable parameters of LoRA ``lora`` (peft ``LoraConfig`` arguments) on a model built from its config only.

    ``architecture`` holds config values (``model_type`` defaults to gpt2; missing sizes take the transformers
    defaults, which for GPT-2 are the real 124M ``gpt2`` shape). The model lives on the meta device: no weights
    are allocated or downloaded.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(_plain(architecture) or {})
    model_type = values.pop("model_type", "gpt2")
    config = AutoConfig.for_model(model_type, **values)
    with torch.device("meta"):
        model = ft.prepare(AutoModelForCausalLM.from_config(config), {"method": "lora", **dict(_plain(lora))})
    return int(ft.parameter_counts(model)["trainable"])
