"""Continuing prompts with a causal LM, greedy or sampled: the settings (one set of defaults) and the generation
loop, shared by the generate command (:mod:`dllabs.generation`) and the text-samples callback."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Annotated, Any, get_type_hints

import torch
from annotated_types import Ge
from pydantic import ConfigDict
from torch import nn
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from dllabs.config_types import AtLeast0, AtLeast1, Positive, UnitFraction
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


def settings_from(cfg: Any) -> GenerationSettings:
    """The settings named in ``cfg`` (a config or dict): its non-null fields of :class:`GenerationSettings`."""
    values = {field.name: cfg.get(field.name) for field in fields(GenerationSettings)}
    return GenerationSettings(**{key: value for key, value in values.items() if value is not None})
