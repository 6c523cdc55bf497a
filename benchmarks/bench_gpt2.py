"""GPT-2 fine-tuning step time: full fine-tuning vs LoRA (the lab's r 64, alpha 16, dropout 0.1 on c_attn).

Randomly initialised GPT-2 (step time does not depend on the weights, so nothing is downloaded) at the real
``gpt2`` shape (124M): on a GPU with 1024-token lines, batch 8, bf16 autocast (the lab's setting); on the CPU with
128-token lines, batch 2, in fp32 and again under bf16 autocast (``trainer.precision=bf16-mixed``), each
against its fp32 row (``--quick``: a tiny model). LoRA goes through the project's own
``dllabs.lm.finetune.prepare`` with ``conf/finetune/lora.yaml``; both use AdamW (lr 5e-5) on the trainable
parameters. Reported per method: median time of one optimiser step (forward + backward + update) after warm-up,
tokens/s, trainable parameters and, on a GPU, peak memory. No ``torch.compile`` row on the CPU: compiling the
124M model takes minutes, more than the whole benchmark.

    python benchmarks/bench_gpt2.py [--quick]
"""

from __future__ import annotations

import sys

import torch
from common import ROOT, compare, main_for, median_time, row

NAME = "gpt2"


def settings(quick: bool, cuda: bool) -> dict:
    if cuda:
        return {"n_layer": 12, "n_head": 12, "n_embd": 768, "seq": 1024, "batch": 8, "steps": 5 if quick else 20, "warmup": 3}
    if quick:
        return {"n_layer": 2, "n_head": 2, "n_embd": 128, "seq": 64, "batch": 2, "steps": 3, "warmup": 1}
    return {"n_layer": 12, "n_head": 12, "n_embd": 768, "seq": 128, "batch": 2, "steps": 3, "warmup": 1}


def build(method: str, s: dict, device: torch.device) -> torch.nn.Module:
    from omegaconf import OmegaConf
    from transformers import GPT2Config, GPT2LMHeadModel

    from dllabs.lm.finetune import prepare

    torch.manual_seed(0)
    config = GPT2Config(n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"], n_positions=max(1024, s["seq"]))
    finetune = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "finetune" / f"{method}.yaml"))
    return prepare(GPT2LMHeadModel(config), finetune).to(device).train()


def measure(method: str, s: dict, device: torch.device, bf16: bool) -> dict:
    model = build(method, s, device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=5e-5)
    tokens = torch.randint(0, 50257, (s["batch"], s["seq"]), device=device)
    cuda = device.type == "cuda"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = median_time(step, repeats=s["steps"], warmup=s["warmup"])
    result = {
        "step_s": seconds,
        "tokens_per_s": s["batch"] * s["seq"] / seconds,
        "trainable": sum(p.numel() for p in trainable),
        "total": sum(p.numel() for p in model.parameters()),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    return result


def run(quick: bool) -> list[dict]:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    s = settings(quick, cuda)
    shape = f"{s['n_layer']} layers x {s['n_embd']}, batch {s['batch']} x {s['seq']} tokens"
    rows = []
    for method in ("full", "lora"):
        result = measure(method, s, device, bf16=cuda)
        if cuda:
            torch.cuda.empty_cache()
        memory = f", peak {result['peak_memory_gib']:.2f} GiB" if result["peak_memory_gib"] is not None else ""
        note = f"{shape}; {'bf16-mixed' if cuda else 'fp32'}; trainable {result['trainable']:,} of {result['total']:,}{memory}"
        rows.append(row(NAME, f"{method}: step time", result["step_s"], "s", note=note, **result))
        rows.append(row(NAME, f"{method}: tokens/s", result["tokens_per_s"], "tokens/s"))
        if not cuda:  # the CPU's bf16 against its fp32 (on a GPU every row is bf16 already)
            bf16 = measure(method, s, device, bf16=True)
            rows.append(row(NAME, f"{method}: tokens/s, bf16-mixed", bf16["tokens_per_s"], "tokens/s", note=shape))
            compare(rows, f"{method}: tokens/s, bf16-mixed", f"{method}: tokens/s", better="higher")
    compare(rows, "lora: step time", "full: step time", better="lower")
    compare(rows, "lora: tokens/s", "full: tokens/s", better="higher")
    return rows


if __name__ == "__main__":
    sys.exit(main_for(NAME, run, __doc__))
