"""The files and folders a job reads, checked before its run folder is made, so a bad one is one ``error:`` line.

:func:`check_input_files` (called by :mod:`dllabs.launch_check` for every job) checks the checkpoint ``ckpt_path``
names (a file that reads as a checkpoint; ``last`` finds one), the data module's files (its ``check_files()``:
e.g. the LMS lab's ``data.path`` read and validated, CIFAR-10's ``val_size`` against its training set), a
``data.data_dir`` set to a folder that does not exist, and for ``eval.py``/``predict.py`` the ``run_dir`` and
``predict.py``'s input. torch and Lightning are imported only when a check needs them (a refused value must not
wait for them, see :mod:`dllabs.cli`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dllabs.errors import ConfigError


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No log lines from a check (the run says them once, in its log)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def check_input_files(cfg: DictConfig, multirun: bool) -> None:
    """Raise a :class:`~dllabs.errors.DllabsError` (one line) for the first file or folder ``cfg``'s job cannot read."""
    if "run_dir" in cfg:
        _check_run_dir(cfg)
        return
    if cfg.get("ckpt_path"):
        from dllabs.checkpointing import requested_checkpoint  # torch: only when a checkpoint is named

        with _quiet():
            requested_checkpoint(cfg, multirun)
    if cfg.get("data") is not None and "_target_" in cfg.data:
        _check_data(cfg)


def _check_data(cfg: DictConfig) -> None:
    data_dir = OmegaConf.select(cfg, "data.data_dir")
    default = Path(str(cfg.paths.root_dir)) / "data"  # where a first run downloads to: made by the download
    if data_dir is not None and not Path(str(data_dir)).expanduser().is_dir() and Path(str(data_dir)) != default:
        raise ConfigError(f"data.data_dir={data_dir}: no such folder; give the folder that holds the dataset")
    with _quiet():
        datamodule = instantiate(cfg.data)
        check_files = getattr(datamodule, "check_files", None)
        if check_files is not None:
            check_files()


def _check_run_dir(cfg: DictConfig) -> None:
    """``eval.py``/``predict.py``/``generate.py``: ``run_dir`` is a run folder; ``predict.py`` has something to
    predict."""
    from dllabs.runs import load_run_config  # torch

    if OmegaConf.is_missing(cfg, "run_dir"):
        raise ConfigError("run_dir=<a run folder made by train.py> is needed")
    if cfg.run_dir is not None:  # generate.py may start from a pretrained model instead
        load_run_config(cfg.run_dir)
    if "input" in cfg and "text" in cfg:
        if cfg.input is None and cfg.text is None:
            raise ConfigError("predict.py needs input=<a file or folder> (or text=\"...\" for a text run)")
        if cfg.input is not None and not Path(str(cfg.input)).expanduser().exists():
            raise ConfigError(f"input={cfg.input}: no such file or folder")
