"""WikiText data module: sources, split roles, fraction, and the labels of the three protocols."""

from __future__ import annotations

import pytest
import torch

from dllabs.data.wikitext import WikiTextDataModule, collate, packed_examples
from dllabs.errors import CorruptDataError, DatasetNotFoundError
from tests.fixtures import wikitext as fixture


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("wikitext")
    fixture.write_wikitext(root / "wikitext-2-raw")
    tokenizer_dir = root / "tokenizer"
    fixture.make_tokenizer(tokenizer_dir)
    return root, str(tokenizer_dir)


def module(root, tokenizer, **kwargs) -> WikiTextDataModule:
    dm = WikiTextDataModule(data_dir=root, tokenizer=tokenizer, local_files_only=True, **kwargs)
    dm.setup("fit")
    return dm


def raw_lines(root, split="train"):
    """The file's lines, blank ones as the hub dataset holds them ("")."""
    text = (root / "wikitext-2-raw" / f"wiki.{split}.raw").read_text(encoding="utf-8")
    return [line + "\n" if line.strip() else "" for line in text.split("\n")[:-1]]


def non_empty_lines(root, split="train"):
    return [line for line in raw_lines(root, split) if line]


def test_lab_protocol_pads_every_line_to_block_size_and_ignores_pads(tiny):
    root, tokenizer = tiny
    dm = module(root, tokenizer, protocol="lab", block_size=24, batch_size=4)
    batch = next(iter(dm.val_dataloader()))
    assert batch["input_ids"].shape == (4, 24)
    lines = raw_lines(root, "valid")[:4]
    assert lines[0] == "" and lines[1].startswith(" = "), "the fixture starts with a blank line and a heading"
    for row, line in enumerate(lines):
        ids = dm.tokenizer(line)["input_ids"][:24]
        n = len(ids)
        assert batch["input_ids"][row, :n].tolist() == ids
        assert batch["labels"][row, :n].tolist() == ids
        assert (batch["labels"][row, n:] == -100).all()
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (24 - n)
    assert (batch["labels"] == -100).any(), "the fixture's short lines must leave padding"


def test_lab_protocol_keeps_empty_lines_so_ten_percent_of_wikitext2_is_459_steps_per_epoch(tmp_path, tiny):
    from functools import partial

    from dllabs import schedules

    _, tokenizer = tiny
    fixture.write_wikitext(tmp_path / "wikitext-2-raw", {"train": 36_718, "valid": 3_760, "test": 40})  # WikiText-2's
    dm = module(tmp_path, tokenizer, protocol="lab", fraction=0.1, block_size=32, batch_size=8)
    assert dm.describe()["examples"] == {"train": 3_671, "validation": 376}
    empty = [row for row, example in enumerate(dm.datasets["train"].examples) if not example]
    assert len(empty) == sum(1 for line in raw_lines(tmp_path)[:3_671] if not line) > 1_000
    loader = dm.train_dataloader()
    assert len(loader) == 459 and len(dm.val_dataloader()) == 47
    empty_row = collate([dm.datasets["train"][empty[0]]], pad_id=0, pad_to=32)
    assert (empty_row["labels"] == -100).all() and not empty_row["attention_mask"].any()
    # 3 epochs = 1,377 steps: 500 warm-up steps, then the linear decay reaches 0 at the last step (the lab's shape)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    schedule = partial(schedules.linear, warmup_steps=500)(optimizer, total_steps=3 * len(loader), steps_per_epoch=459)
    rates = []
    for _ in range(3 * len(loader)):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert len(rates) == 1_377 and max(rates) == rates[500] == 1.0 and rates[250] == pytest.approx(0.5, abs=0.01)
    assert rates[-1] == pytest.approx(1 / 877, rel=1e-6) and optimizer.param_groups[0]["lr"] == 0.0


def test_dynamic_protocol_pads_a_batch_of_empty_lines_to_one_ignored_token():
    batch = collate([[], []], pad_id=7)
    assert batch["input_ids"].tolist() == [[7], [7]] and (batch["labels"] == -100).all()
    assert not batch["attention_mask"].any()


def test_dynamic_protocol_has_the_same_tokens_padded_to_the_longest_line(tiny):
    root, tokenizer = tiny
    lab = module(root, tokenizer, protocol="lab", block_size=24, batch_size=4)
    dynamic = module(root, tokenizer, protocol="dynamic", block_size=24, batch_size=4)
    a, b = next(iter(lab.val_dataloader())), next(iter(dynamic.val_dataloader()))
    width = b["input_ids"].shape[1]
    assert width == int(b["attention_mask"].sum(1).max()) <= 24
    assert torch.equal(a["labels"][:, :width], b["labels"])
    assert (a["labels"][:, width:] == -100).all()


def test_packed_protocol_concatenates_lines_into_full_blocks(tiny):
    root, tokenizer = tiny
    dm = module(root, tokenizer, protocol="packed", block_size=16, batch_size=4)
    stream = [t for line in non_empty_lines(root, "valid") for t in dm.tokenizer(line)["input_ids"]]
    blocks = dm.datasets["validation"].examples
    assert [t for block in blocks for t in block] == stream[: sum(len(b) for b in blocks)]
    assert all(len(block) == 16 for block in blocks[:-1])
    batch = next(iter(dm.val_dataloader()))
    assert batch["input_ids"].shape == (4, 16)
    assert torch.equal(batch["labels"], batch["input_ids"]) and bool(batch["attention_mask"].all())


def test_packing_keeps_a_short_tail_block_and_pads_only_it():
    blocks = packed_examples([[1, 2, 3], [4, 5], [6, 7, 8]], block_size=3)
    assert blocks == [[1, 2, 3], [4, 5, 6], [7, 8]]
    batch = collate(blocks, pad_id=0)
    assert batch["labels"].tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, -100]]
    assert packed_examples([[1, 2, 3, 4]], block_size=3) == [[1, 2, 3]], "a 1-token tail predicts nothing"


def test_fraction_keeps_the_first_lines_of_each_split(tiny):
    root, tokenizer = tiny
    dm = module(root, tokenizer, fraction=0.1, block_size=24)
    lines = {split: len(v) for split, v in dm.lines.items()}
    assert lines == {"train": 16, "validation": 6}  # floor(0.1 * 160), floor(0.1 * 60)
    assert dm.lines["train"] == raw_lines(root, "train")[:16]
    assert dm.describe()["splits"] == {"train": "train", "val": "validation", "test": "test"}


def test_missing_train_split_says_how_to_map_the_roles(tmp_path, tiny):
    _, tokenizer = tiny
    fixture.write_wikitext(tmp_path / "wikitext-2-raw", {"valid": 40, "test": 40})
    with pytest.raises(DatasetNotFoundError, match="data.splits.train=validation"):
        module(tmp_path, tokenizer)
    dm = module(tmp_path, tokenizer, splits={"train": "validation", "val": "test"}, block_size=24)
    assert dm.describe()["splits"]["train"] == "validation" and len(dm.train_dataloader()) > 0


def test_saved_dataset_folder_gives_the_same_examples(tmp_path, tiny):
    from datasets import Dataset, DatasetDict

    root, tokenizer = tiny
    raw = {s: (root / "wikitext-2-raw" / f"wiki.{f}.raw").read_text(encoding="utf-8").split("\n")[:-1]
           for s, f in (("train", "train"), ("validation", "valid"), ("test", "test"))}
    saved = DatasetDict({s: Dataset.from_dict({"text": [line + "\n" for line in v]}) for s, v in raw.items()})
    saved.save_to_disk(str(tmp_path / "wikitext-2-raw"))
    from_files = module(root, tokenizer, block_size=24)
    from_saved = module(tmp_path, tokenizer, block_size=24)
    assert from_saved.source_used.startswith("saved:")
    assert from_saved.datasets["train"].examples == from_files.datasets["train"].examples


def test_corrupt_file_is_reported(tmp_path, tiny):
    _, tokenizer = tiny
    folder = fixture.write_wikitext(tmp_path / "wikitext-2-raw")
    (folder / "wiki.valid.raw").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(CorruptDataError, match="wiki.valid.raw"):
        module(tmp_path, tokenizer)


def test_token_stream_joins_the_split_text(tiny):
    root, tokenizer = tiny
    dm = WikiTextDataModule(data_dir=root, tokenizer=tokenizer, local_files_only=True, fraction=0.5)
    stream = dm.token_stream("test")
    text = "\n\n".join(line.rstrip("\n") for line in dm.lines["test"])
    assert dm.tokenizer.decode(stream) == text and len(dm.lines["test"]) == 30


@pytest.mark.realdata
def test_real_wikitext_lab_slice(shared_data):
    folder = shared_data / "wikitext-2-raw"
    tokenizer = shared_data / "gpt2-tokenizer"
    if not (folder / "wiki.valid.raw").exists() or not tokenizer.is_dir():
        pytest.skip("WikiText-2 raw or the GPT-2 tokenizer is not in the shared data folder")
    dm = WikiTextDataModule(data_dir=shared_data, tokenizer=str(tokenizer), fraction=0.1, block_size=1024,
                            splits={"train": "validation", "val": "test"}, local_files_only=True)
    dm.setup("fit")
    # the lab's 10% slice: 3,760 validation lines -> 376 examples, empty lines included (47 batches of 8)
    assert (folder / "wiki.valid.raw").read_text(encoding="utf-8").count("\n") == 3_760
    assert dm.describe()["lines"] == {"validation": 376, "test": 435}
    assert dm.describe()["examples"] == {"validation": 376, "test": 435} and len(dm.train_dataloader()) == 47
    assert sum(1 for example in dm.datasets["validation"].examples if not example) > 100
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (8, 1024)
    assert dm.tokenizer("Hello world")["input_ids"] == [15496, 995]
