"""Text generation with a causal LM: from a trained run folder or a pretrained model, greedy or sampled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import torch
from annotated_types import Ge
from pydantic import ConfigDict
from torch import nn
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from dllabs.config_types import AtLeast0, AtLeast1, Positive, UnitFraction
from dllabs.entry import hydra_main
from dllabs.errors import ConfigError


@dataclass
class GenerationSettings:
    """How to continue a prompt: the one set of defaults (configs override single keys, null = keep the default).

    ``do_sample=false`` is greedy decoding; the sampling knobs apply otherwise. ``max_length`` (prompt and
    continuation together, as the lab's ``max_length=100``) replaces ``max_new_tokens`` when set.
    """

    max_new_tokens: AtLeast1 = 50
    max_length: Annotated[int, Ge(2)] | None = None
    do_sample: bool = False
    temperature: Positive = 1.0
    top_k: AtLeast0 = 50
    top_p: UnitFraction = 1.0
    repetition_penalty: Positive = 1.0
    num_return_sequences: AtLeast1 = 1
    seed: int | None = 0

    def generate_kwargs(self) -> dict[str, Any]:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.max_length is not None and self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2 tokens, got {self.max_length}")
        length = {"max_new_tokens": int(self.max_new_tokens)} if self.max_length is None else {
            "max_length": int(self.max_length)}
        kwargs: dict[str, Any] = {
            **length,
            "do_sample": bool(self.do_sample),
            "num_return_sequences": int(self.num_return_sequences),
            "repetition_penalty": float(self.repetition_penalty),
        }
        if self.do_sample:
            kwargs.update(temperature=float(self.temperature), top_k=int(self.top_k), top_p=float(self.top_p))
        elif self.num_return_sequences > 1:
            raise ConfigError("num_return_sequences > 1 needs do_sample=true (greedy decoding gives one answer)")
        return kwargs


# Settings a config overrides (callbacks.text_samples.generation): the fields above, each null = keep the default
GenerationOverrides = TypedDict(
    "GenerationOverrides",
    {name: hint | None for name, hint in get_type_hints(GenerationSettings, include_extras=True).items()},
    total=False,
)
GenerationOverrides.__pydantic_config__ = ConfigDict(extra="forbid")


@torch.no_grad()
def generate(
    model: nn.Module, tokenizer: Any, prompts: Sequence[str], settings: GenerationSettings | None = None
) -> list[dict[str, str]]:
    """Continue each prompt; returns ``{"prompt", "text"}`` per output (``text`` includes the prompt)."""
    settings = settings or GenerationSettings()
    kwargs = settings.generate_kwargs()
    if not prompts:
        raise ConfigError('no prompt given: pass prompt="..." (or a list in generation.prompts)')
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[dict[str, str]] = []
    # a seeded generation must not change the random state of the training around it
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            if settings.seed is not None:
                torch.manual_seed(int(settings.seed))
            for prompt in prompts:
                encoded = tokenizer([prompt], return_tensors="pt", padding=True).to(device)
                if encoded["input_ids"].shape[1] == 0:
                    encoded = {
                        "input_ids": torch.tensor([[tokenizer.bos_token_id]], device=device),
                        "attention_mask": torch.ones((1, 1), dtype=torch.long, device=device),
                    }
                tokens = model.generate(**encoded, pad_token_id=tokenizer.pad_token_id, **kwargs)
                for row in tokens:
                    outputs.append({"prompt": prompt, "text": tokenizer.decode(row, skip_special_tokens=True)})
        finally:
            tokenizer.padding_side = padding_side
            model.train(was_training)
    return outputs


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


def settings_from(cfg: Any) -> GenerationSettings:
    """The settings named in ``cfg`` (a config or dict): its non-null fields of :class:`GenerationSettings`."""
    values = {field.name: cfg.get(field.name) for field in fields(GenerationSettings)}
    return GenerationSettings(**{key: value for key, value in values.items() if value is not None})


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
