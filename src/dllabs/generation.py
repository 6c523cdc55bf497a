"""The ``generate`` command (``scripts/generate.py``): text from a trained run folder or a pretrained model,
greedy or sampled (the settings and the loop: :mod:`dllabs.lm.text_generation`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dllabs.entry import hydra_main
from dllabs.errors import ConfigError
from dllabs.lm.text_generation import generate, settings_from


def load_from_run(run_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, Any, str]:
    """Model and tokenizer of a trained LM run: its ``hf_model/`` export, else its net with the weights of its best
    checkpoint and its data module's tokenizer (both rebuilt from the run's own config)."""
    from dllabs.lm.finetune import MODEL_DIR
    from dllabs.lm.pretrained import load_causal_lm, load_tokenizer

    run = Path(run_dir).expanduser()
    if not run.is_dir():
        raise ConfigError(f"run_dir {run} does not exist; pass the folder of a finished GPT-2 run (outputs/...)")
    export = run / MODEL_DIR
    if (export / "config.json").is_file():
        return load_causal_lm(str(export)).to(device), load_tokenizer(str(export)), f"export {export}"
    from dllabs import runs

    cfg = runs.load_run_config(run)
    task = runs.instantiate_task(cfg)
    if not hasattr(task.net, "generate"):
        raise ConfigError(f"{run} is not a language-model run (model.net={cfg.model.net.get('_target_')})")
    checkpoint = runs.best_checkpoint(run)
    runs.load_task_weights(task, checkpoint)
    tokenizer = runs.instantiate_datamodule(cfg).tokenizer
    return task.net.to(device), tokenizer, f"checkpoint {checkpoint}"


def load_pretrained(pretrained: str, tokenizer: str | None = None, device: str = "cpu",
                    local_files_only: bool = False) -> tuple[nn.Module, Any, str]:
    """A pretrained causal LM (hub name or folder) and its tokenizer."""
    from dllabs.lm.pretrained import load_causal_lm, load_tokenizer

    model = load_causal_lm(pretrained, local_files_only=local_files_only).to(device)
    return model, load_tokenizer(tokenizer or pretrained, local_files_only=local_files_only), f"pretrained {pretrained}"


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def generate_from_config(cfg: Any) -> list[dict[str, str]]:
    """``scripts/generate.py``: load from ``run_dir`` or ``model.pretrained``, continue the prompt(s), print."""
    import json

    device = pick_device(cfg.get("device", "auto"))
    model_cfg = cfg.get("model") or {}
    if cfg.get("run_dir"):
        model, tokenizer, source = load_from_run(cfg.run_dir, device)
    elif model_cfg.get("pretrained"):
        model, tokenizer, source = load_pretrained(
            model_cfg.pretrained, model_cfg.get("tokenizer"), device, bool(model_cfg.get("local_files_only", False))
        )
    else:
        raise ConfigError("nothing to generate with: pass run_dir=<a GPT-2 run folder> or model.pretrained=<name|folder>")
    prompts = list(cfg.get("prompts") or []) or [cfg.prompt]
    settings = settings_from(cfg)
    samples = generate(model, tokenizer, prompts, settings)
    length = f"{settings.max_length} tokens" if settings.max_length else f"{settings.max_new_tokens} new tokens"
    print(f"# {source} ({'sampling' if settings.do_sample else 'greedy'}, {length})")
    for sample in samples:
        print(f"\n--- {sample['prompt']!r}\n{sample['text']}")
    if cfg.get("output"):
        out = Path(cfg.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"source": source, "samples": samples}, indent=2))
    return samples


def generate_main() -> None:
    hydra_main(generate_from_config, "generate")
