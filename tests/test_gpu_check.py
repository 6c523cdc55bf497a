"""The prepared GPU check (benchmarks/gpu_check.py) runs end to end on the CPU with tiny sizes and writes its
JSON and table: the same code that runs on the GPU machine, minus torch.compile."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes (its byte-level BPE alphabet)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\xa1"), ord("\xac") + 1),
        *range(ord("\xae"), 256),
    ]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def byte_level_tokenizer(folder):
    """A GPT-2-format tokenizer (vocab.json + merges.txt) with the 256 byte symbols and no merges."""
    folder.mkdir()
    symbols = byte_symbols()
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def run_check(tmp_path, parts):
    text = tmp_path / "wiki.valid.raw"
    text.write_text(
        " \n = Heading = \n" + "".join(f" Line {k} of a small text , with words . \n \n" for k in range(40))
    )
    out = tmp_path / "out"
    result = run_cli(
        [
            "benchmarks/gpu_check.py",
            "--device",
            "cpu",
            "--quick",
            "--parts",
            *parts,
            "--tokenizer",
            str(byte_level_tokenizer(tmp_path / "tokenizer")),
            "--text",
            str(text),
            "--out",
            str(out),
        ],
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((out / "gpu_check_cpu.json").read_text())
    table = (out / "gpu_check_cpu.txt").read_text()
    return record, table


@pytest.mark.slow
def test_gpu_check_measures_resnet20_and_gpt2_on_cpu(tmp_path):
    record, table = run_check(tmp_path, ["resnet20", "gpt2"])
    rows = {r["measurement"]: r for r in record["rows"]}
    assert record["failures"] == 0 and record["machine"]["gpu"] is None
    assert rows["framework fp32"]["baseline"] == "plain loop fp32" and rows["framework fp32"]["ratio"] > 0
    assert rows["bare LightningModule fp32 (floor)"]["baseline"] == "plain loop fp32"
    assert rows["data: device loader"]["baseline"] == "data: standard DataLoader"
    assert rows["projected training time: resnet20_fast"]["value"] > 0
    for protocol in ("lab", "dynamic", "packed"):
        for method in ("full", "lora"):
            assert rows[f"{protocol}: {method}: tokens/s"]["value"] > 0
            assert (
                rows[f"{protocol}: {method}: projected lab time"]["course_a100_min"]
                == {"full": 12, "lora": 9}[method]
            )
    assert rows["lab: lora: step time"]["baseline"] == "lab: full: step time"
    assert "projected training time: resnet20_fast" in table and "packed: lora: tokens/s" in table


@pytest.mark.slow
def test_gpu_check_training_paths_run_on_cpu(tmp_path):
    record, table = run_check(tmp_path, ["paths"])
    assert record["failures"] == 0
    labels = [r["measurement"] for r in record["rows"]]
    assert any("resume" in label for label in labels) and any("predict.py" in label for label in labels)
    assert all(r["ok"] for r in record["rows"]) and table.count(" ok") == len(record["rows"])
