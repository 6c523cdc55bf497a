"""LoRA's trainable parameters on a model shape, counted from the configs alone (meta device: no weights, no hub).

    python scripts/lora_params.py                                   # the lab: conf/finetune/lora.yaml on the real gpt2 shape
    python scripts/lora_params.py finetune.r=8 'finetune.target_modules=[c_attn,c_proj]' --out outputs/lora
    python scripts/lora_params.py architecture.n_layer=24 architecture.n_embd=1024 architecture.n_head=16   # gpt2-medium

Overrides are OmegaConf dotlist items on ``finetune`` (defaults: ``conf/finetune/lora.yaml``) and ``architecture``
(defaults: transformers' GPT-2 config, i.e. the 124M ``gpt2``). Prints the count and, with ``--out``, writes
``result.json`` there (the results ledger shows it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from dllabs.errors import ConfigError, run_command
from dllabs.nets.causal_lm import lora_trainable_parameters

ROOT = Path(__file__).resolve().parents[1]


def count(overrides: list[str]) -> dict:
    bad = [o for o in overrides if not o.startswith(("finetune.", "architecture.")) or "=" not in o]
    if bad:
        raise ConfigError(f"{bad[0]}: overrides are finetune.KEY=VALUE or architecture.KEY=VALUE")
    base = OmegaConf.create({
        "finetune": OmegaConf.load(ROOT / "conf" / "finetune" / "lora.yaml"),
        "architecture": {"model_type": "gpt2"},
    })
    cfg = OmegaConf.merge(base, OmegaConf.from_dotlist(overrides))
    finetune = {k: v for k, v in OmegaConf.to_container(cfg.finetune, resolve=True).items() if k != "method"}
    architecture = OmegaConf.to_container(cfg.architecture, resolve=True)
    return {
        "finetune": finetune,
        "architecture": architecture,
        "trainable_parameters": lora_trainable_parameters(finetune, architecture),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="finetune.KEY=VALUE / architecture.KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None, help="folder for result.json")
    args = parser.parse_args(argv)

    def show() -> None:
        result = count(args.overrides)
        print(f"LoRA trainable parameters: {result['trainable_parameters']:,} "
              f"(finetune {json.dumps(result['finetune'])}, architecture {json.dumps(result['architecture'])})")
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")

    return run_command(show)


if __name__ == "__main__":
    raise SystemExit(main())
