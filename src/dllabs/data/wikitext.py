"""WikiText-2 (raw) for causal language modelling, loaded through Hugging Face ``datasets``.

Sources, tried in this order with ``source=auto``: the raw files ``wiki.{train,valid,test}.raw`` under
``data_dir/subdir`` (or ``data_dir``), a dataset saved with ``DatasetDict.save_to_disk`` there, the hub
(``Salesforce/wikitext``, config ``wikitext-2-raw-v1``).

Protocols (how lines become training examples):

- ``lab``: every line is one example, the empty ones included (as the lab's Hugging Face dataset holds them: blank
  lines are ``""``), each tokenised on its own, truncated/padded to ``block_size``; pad positions get label -100
  (the lab's set-up; most of each 1024-token row is padding). An empty line has no tokens and adds no loss, but
  it counts as an example: the first 10% of WikiText-2 is 3,671 train examples, 459 batches of 8 per epoch.
- ``dynamic``: the same examples, padded only to the longest line of the batch (same numbers, less compute).
- ``packed``: the lines concatenated and cut into ``block_size`` token blocks (no padding at all).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import lightning as L
import torch
from annotated_types import Ge
from pydantic import ConfigDict
from torch.utils.data import DataLoader, Dataset
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from dllabs.config_types import AtLeast0, AtLeast1, UnitFraction
from dllabs.errors import ConfigError, CorruptDataError, DatasetNotFoundError
from dllabs.lm.perplexity import IGNORE_INDEX

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "wiki.train.raw", "validation": "wiki.valid.raw", "test": "wiki.test.raw"}
SPLIT_ALIASES = {"valid": "validation", "val": "validation"}
DEFAULT_SPLITS = {"train": "train", "val": "validation", "test": "test"}


SplitName = Literal["train", "validation", "valid", "val", "test"]


class SplitRoles(TypedDict, total=False):
    """data.splits: which dataset split plays each role."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # a role other than these is refused before the run
    train: SplitName
    val: SplitName
    test: SplitName


def canonical_split(name: str) -> str:
    split = SPLIT_ALIASES.get(str(name), str(name))
    if split not in SPLIT_FILES:
        raise ConfigError(f"unknown WikiText split {name!r}: use train, validation (valid) or test")
    return split


class TokenExamples(Dataset):
    """Token-id lists, one per example; labels are made by the collator."""

    def __init__(self, examples: Sequence[Sequence[int]]) -> None:
        self.examples = [list(example) for example in examples]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> list[int]:
        return self.examples[index]


def collate(examples: Sequence[Sequence[int]], pad_id: int, pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad to ``pad_to`` (or the longest example, at least 1 token): input_ids, attention_mask, labels
    (-100 on pads). A batch of empty examples is all padding: it predicts nothing."""
    length = max(1, *(len(example) for example in examples))
    if pad_to is not None:
        length = max(length, pad_to)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        input_ids[row, : len(example)] = torch.as_tensor(example, dtype=torch.long)
        attention_mask[row, : len(example)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def line_examples(token_lists: Sequence[Sequence[int]], block_size: int) -> list[list[int]]:
    """One example per line, empty lines included, truncated to ``block_size`` tokens (the lab protocol)."""
    return [list(tokens[:block_size]) for tokens in token_lists]


def packed_examples(token_lists: Sequence[Sequence[int]], block_size: int) -> list[list[int]]:
    """All lines concatenated and cut into ``block_size`` blocks; a last block shorter than 2 tokens is dropped."""
    stream = [token for tokens in token_lists for token in tokens]
    blocks = [stream[start : start + block_size] for start in range(0, len(stream), block_size)]
    return [block for block in blocks if len(block) >= 2]


def read_raw_lines(path: Path) -> list[str]:
    """Lines of a WikiText ``.raw`` file, each with its trailing newline."""
    try:
        with open(path, encoding="utf-8", newline="\n") as handle:
            lines = list(handle)
    except UnicodeDecodeError as error:
        raise CorruptDataError(f"{path} is not UTF-8 text ({error}); replace it with the original WikiText file") from error
    if not any(line.strip() for line in lines):
        raise CorruptDataError(f"{path} holds no text; replace it with the original WikiText file")
    return lines


class WikiTextDataModule(L.LightningDataModule):
    """WikiText-2 raw lines, tokenised with the model's tokenizer, under one of three protocols (see module doc).

    ``splits`` maps the roles train/val/test to dataset splits. Offline copies without the train split (such as
    this project's ``../shared/data``) train on ``validation`` and evaluate on ``test``:
    ``data.splits.train=validation data.splits.val=test``. ``fraction`` keeps the first ``floor(fraction * n)``
    lines of each split (the lab: 0.1 -> 3,671 train / 376 validation lines).
    """

    def __init__(
        self,
        data_dir: str | Path = "data",
        tokenizer: str | None = "gpt2",
        protocol: Literal["lab", "dynamic", "packed"] = "lab",
        block_size: Annotated[int, Ge(2)] = 1024,
        fraction: UnitFraction = 1.0,
        batch_size: AtLeast1 = 8,
        eval_batch_size: AtLeast1 | None = None,
        num_workers: AtLeast0 = 0,
        source: Literal["auto", "files", "saved", "hub"] = "auto",
        subdir: str = "wikitext-2-raw",
        hub_name: str = "Salesforce/wikitext",
        hub_config: str = "wikitext-2-raw-v1",
        splits: SplitRoles | None = None,
        local_files_only: bool = False,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        roles = dict(DEFAULT_SPLITS, **dict(splits or {}))
        self.roles = {role: canonical_split(split) for role, split in roles.items()}
        self.data_dir = Path(data_dir).expanduser()
        self.tokenizer_name = tokenizer
        self.protocol = protocol
        self.block_size = int(block_size)
        self.fraction = float(fraction)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.source = source
        self.subdir = subdir
        self.hub_name = hub_name
        self.hub_config = hub_config
        self.local_files_only = bool(local_files_only)
        self.pin_memory = bool(pin_memory)
        self._tokenizer: Any = None
        self.source_used: str | None = None
        self.lines: dict[str, list[str]] = {}
        self.datasets: dict[str, TokenExamples] = {}
        self.token_counts: dict[str, int] = {}

    # ----------------------------------------------------------------- loading
    def _folder(self) -> Path:
        nested = self.data_dir / self.subdir if self.subdir else self.data_dir
        return nested if nested.is_dir() else self.data_dir

    def _resolve_source(self) -> str:
        folder = self._folder()
        if self.source != "auto":
            return self.source
        if any((folder / name).is_file() for name in SPLIT_FILES.values()):
            return "files"
        if (folder / "dataset_dict.json").is_file():
            return "saved"
        return "hub"

    def _load_splits(self, needed: set[str]) -> dict[str, list[str]]:
        source = self._resolve_source()
        folder = self._folder()
        if source == "files":
            missing = [split for split in sorted(needed) if not (folder / SPLIT_FILES[split]).is_file()]
            if missing:
                present = [split for split, name in SPLIT_FILES.items() if (folder / name).is_file()]
                raise DatasetNotFoundError(
                    f"WikiText split(s) {missing} not found in {folder} (expected "
                    f"{', '.join(SPLIT_FILES[s] for s in missing)}; present: {present or 'none'}). Either add the "
                    f"files, or map the roles onto the splits you have, e.g. data.splits.train=validation "
                    f"data.splits.val=test data.splits.test=test (train on validation, evaluate on test)."
                )
            self.source_used = f"files:{folder}"
            return {split: read_raw_lines(folder / SPLIT_FILES[split]) for split in needed}
        if source == "saved":
            from datasets import load_from_disk

            try:
                saved = load_from_disk(str(folder))
            except (FileNotFoundError, ValueError) as error:
                raise CorruptDataError(f"{folder} is not a dataset saved with save_to_disk ({error})") from error
            missing = sorted(needed - set(saved.keys()))
            if missing:
                raise DatasetNotFoundError(
                    f"saved dataset {folder} has splits {sorted(saved.keys())}, not {missing}; map the roles onto "
                    f"the splits it has, e.g. data.splits.train=validation data.splits.val=test"
                )
            self.source_used = f"saved:{folder}"
            return {split: list(saved[split]["text"]) for split in needed}
        from datasets import load_dataset

        try:
            hub = load_dataset(self.hub_name, self.hub_config)
        except Exception as error:  # datasets raises many types (ConnectionError, FileNotFoundError, HfHubHTTPError)
            raise DatasetNotFoundError(
                f"WikiText not found under {folder} and the hub copy {self.hub_name}/{self.hub_config} could not be "
                f"loaded ({type(error).__name__}). Offline, put wiki.train.raw, wiki.valid.raw and wiki.test.raw in "
                f"{self.data_dir / self.subdir} (or a folder written by DatasetDict.save_to_disk), and point "
                f"data.data_dir at its parent; with internet, run once to fill the cache."
            ) from error
        self.source_used = f"hub:{self.hub_name}/{self.hub_config}"
        return {split: list(hub[split]["text"]) for split in needed}

    @property
    def tokenizer(self) -> Any:
        """The tokenizer of ``data.tokenizer`` (loaded on first use): the one tokenizer of a run, which the
        callbacks (samples, export) and generation use too."""
        if self._tokenizer is None:
            from dllabs.lm.pretrained import load_tokenizer

            self._tokenizer = load_tokenizer(self.tokenizer_name, local_files_only=self.local_files_only)
        return self._tokenizer

    def _tokenize(self, lines: Sequence[str]) -> list[list[int]]:
        """Token ids of each line, each on its own (``[]`` for an empty line; truncated to ``block_size`` unless
        packing)."""
        if not lines:
            return []
        truncate = self.protocol != "packed"
        encoded = self.tokenizer(
            list(lines), truncation=truncate, max_length=self.block_size if truncate else None, verbose=False
        )
        return [list(ids) for ids in encoded["input_ids"]]

    def prepare_data(self) -> None:
        """Nothing to download beyond what ``setup`` loads through the hub cache."""

    def setup(self, stage: str | None = None) -> None:
        roles = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ()}.get(
            stage or "", ("train", "val", "test")
        )
        needed = {self.roles[role] for role in roles} - set(self.lines)
        if needed:
            for split, lines in self._load_splits(needed).items():
                # blank lines as the hub dataset (the lab's source) holds them: "" (the .raw files have " \n")
                lines = [line if line.strip() else "" for line in lines]
                self.lines[split] = lines[: int(len(lines) * self.fraction)]
        for role in roles:
            split = self.roles[role]
            if split in self.datasets:
                continue
            token_lists = self._tokenize(self.lines[split])
            make = packed_examples if self.protocol == "packed" else line_examples
            self.datasets[split] = TokenExamples(make(token_lists, self.block_size))
            self.token_counts[split] = sum(len(example) for example in self.datasets[split].examples)
            if self.token_counts[split] == 0:
                raise CorruptDataError(
                    f"WikiText split {split} gives no examples (fraction={self.fraction}, "
                    f"{len(self.lines[split])} lines); raise data.fraction or check the file"
                )
        if self.roles["train"] in (self.roles["val"], self.roles["test"]) and stage in (None, "fit"):
            log.warning("training split %s is also evaluated on: its perplexity is not a held-out number",
                        self.roles["train"])
        log.info("WikiText %s", self.describe())

    # ----------------------------------------------------------------- loaders
    def _loader(self, role: str, shuffle: bool) -> DataLoader:
        split = self.roles[role]
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[role])
        pad_to = self.block_size if self.protocol == "lab" else None
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if role == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=partial(collate, pad_id=self.tokenizer.pad_token_id, pad_to=pad_to),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # ----------------------------------------------------------------- extras
    def token_stream(self, role: str = "test") -> torch.Tensor:
        """The role's lines (after ``fraction``) as one token sequence, joined by blank lines as in the
        Hugging Face perplexity guide: the input of the sliding-window evaluation."""
        split = self.roles[role]
        if split not in self.lines:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[role])
        text = "\n\n".join(line.rstrip("\n") for line in self.lines[split])
        return torch.as_tensor(self.tokenizer(text, verbose=False)["input_ids"], dtype=torch.long)

    def describe(self) -> dict[str, Any]:
        """Plain-data summary: source, protocol, which split plays which role, sizes."""
        return {
            "source": self.source_used,
            "protocol": self.protocol,
            "block_size": self.block_size,
            "fraction": self.fraction,
            "splits": dict(self.roles),
            "lines": {split: len(lines) for split, lines in self.lines.items()},
            "examples": {split: len(dataset) for split, dataset in self.datasets.items()},
            "tokens": dict(self.token_counts),
        }
