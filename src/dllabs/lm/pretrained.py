"""Load a Hugging Face causal LM and its tokenizer from a hub name or a local folder, with clear errors offline."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dllabs.errors import ConfigError, DllabsError

log = logging.getLogger(__name__)


class PretrainedNotFoundError(DllabsError):
    """Pretrained weights or tokenizer files are missing and cannot be downloaded."""


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else that names a folder is a local path."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _how_to_provide(name: str) -> str:
    return (
        "To use it offline, on a machine with internet run\n"
        f"  hf download {name} --local-dir DIR\n"
        "or in Python\n"
        f"  AutoModelForCausalLM.from_pretrained('{name}').save_pretrained('DIR'); "
        f"AutoTokenizer.from_pretrained('{name}').save_pretrained('DIR')\n"
        "then copy DIR to this machine and pass model.net.pretrained=DIR (a folder with config.json, the weights "
        "and the tokenizer files). For a pipeline check without weights, build a random model instead: "
        "model.net.pretrained=null 'model.net.architecture={model_type:gpt2,n_layer:2,n_head:2,n_embd:128}' "
        "data.tokenizer=<a tokenizer folder>. Offline, set HF_HUB_OFFLINE=1 (or model.net.local_files_only=true) to "
        "skip the network retries."
    )


def resolve(name: str | None, what: str, required_file: str) -> str:
    """Return ``name`` as a string usable by ``from_pretrained``; raise when a local folder is missing or wrong."""
    if name is None or str(name).strip() == "":
        raise ConfigError(
            f"no {what} given: set model.net.pretrained to a hub name (e.g. gpt2) or a save_pretrained folder; a "
            f"randomly initialised model.net.architecture needs data.tokenizer=<hub name or tokenizer folder>"
        )
    name = str(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / required_file).is_file():
            present = ", ".join(sorted(p.name for p in path.iterdir())[:12]) or "nothing"
            raise PretrainedNotFoundError(
                f"{what} folder {path} has no {required_file} (it holds: {present}). Save one there with "
                f"save_pretrained('{path}'), or point to the right folder.\n{_how_to_provide('gpt2')}"
            )
        return str(path)
    if path.exists() or _looks_like_path(name):
        raise PretrainedNotFoundError(
            f"{what} folder {path} does not exist. Point model.net.pretrained (or data.tokenizer) at a folder "
            f"written by save_pretrained, or use a hub name such as gpt2 on a machine with internet.\n"
            f"{_how_to_provide('gpt2')}"
        )
    return name


def _hub_error(name: str, what: str, error: Exception) -> PretrainedNotFoundError:
    return PretrainedNotFoundError(
        f"could not load the {what} '{name}' from the Hugging Face hub or its local cache "
        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}).\n{_how_to_provide(name)}"
    )


def load_tokenizer(name: str | None, local_files_only: bool = False) -> Any:
    """The tokenizer of ``name`` (hub id or folder), with a pad token (EOS for GPT-2, which has none)."""
    from transformers import AutoTokenizer

    source = resolve(name, "tokenizer", "tokenizer_config.json")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError) as error:
        raise _hub_error(source, "tokenizer", error) from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str | None, dtype: str | None = None, local_files_only: bool = False) -> Any:
    """Pretrained ``AutoModelForCausalLM`` from a hub id or a folder written by ``save_pretrained``.

    Weights load in float32 (what mixed-precision training wants) unless ``dtype`` names another torch dtype
    (``bfloat16``) or ``auto`` (the checkpoint's own).
    """
    import torch
    from transformers import AutoModelForCausalLM

    source = resolve(name, "model", "config.json")
    weights_dtype = torch.float32 if dtype is None else (dtype if dtype == "auto" else getattr(torch, dtype))
    try:
        return AutoModelForCausalLM.from_pretrained(
            source,
            dtype=weights_dtype,
            local_files_only=local_files_only,
            # transformers does not pass local_files_only on to its adapter-config lookup: without this an
            # offline machine waits on network retries before failing
            adapter_kwargs={"local_files_only": local_files_only},
        )
    except (OSError, ValueError) as error:
        raise _hub_error(source, "model", error) from error


def build_causal_lm(architecture: Mapping[str, Any], dtype: str | None = None) -> Any:
    """A randomly initialised causal LM from config values, e.g. ``{model_type: gpt2, n_layer: 2, ...}``.

    ``vocab_size`` defaults to the model type's own (50,257 for GPT-2, the size of its tokenizer)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(architecture)
    model_type = values.pop("model_type", None)
    if model_type is None:
        raise ConfigError(
            "model.net.architecture needs a model_type (e.g. gpt2) next to the sizes (n_layer, n_embd, ...)"
        )
    config = AutoConfig.for_model(model_type, **values)
    model = AutoModelForCausalLM.from_config(config)
    if dtype not in (None, "auto"):
        model = model.to(getattr(torch, dtype))
    log.info("built a randomly initialised %s (%s)", model_type, values)
    return model
