"""Shared test helpers: compose the real configs, run the real train function on generated data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from tests import cli_forkserver

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = Path(os.environ.get("DLLABS_DATA_DIR", ROOT.parent / "shared" / "data"))

torch.set_num_threads(1)  # small nets on 2 shared cores: one thread is many times faster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long tests first (real-data ones, then the other ``slow`` ones), the rest in file order, so that no long
    test is left for the end: under ``make test``'s ``--dist worksteal`` an idle worker takes pending tests from the
    end of a busy worker's queue, and the short tests there keep both workers busy to the last seconds."""
    def rank(item: pytest.Item) -> int:
        slow = item.get_closest_marker("slow") is not None
        return 0 if slow and item.get_closest_marker("realdata") else 1 if slow else 2

    items.sort(key=rank)  # stable: file order within each rank


TWO_BATCHES = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
]

QUIET = [
    "callbacks.progress_bar=null",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
]


def compose_config(overrides: Sequence[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` as Hydra would for a run writing into ``output_dir`` (with the
    project's resolvers registered, as the entry wrapper does)."""
    from dllabs.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_train(overrides: Sequence[str], output_dir: Path) -> tuple[float | None, DictConfig]:
    """Run ``dllabs.cli.train`` in-process on composed overrides; returns (metric, cfg)."""
    from dllabs.cli import train

    cfg = compose_config([*QUIET, *overrides], output_dir)
    return train(cfg), cfg


def run_cli(
    args: Sequence[str], cwd: Path = ROOT, timeout: int = 300, env: dict | None = None, fresh: bool = False
) -> subprocess.CompletedProcess:
    """Run an entry point (``train.py``, ``eval.py``, ...) as a user would: a process of its own, forked from one
    that has imported torch, Lightning and dllabs already (:mod:`tests.cli_forkserver`), or with ``fresh=True`` (and
    whenever the environment changes what those imports read) a new ``python`` process."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    if not fresh:
        forked = cli_forkserver.run([str(a) for a in args], Path(cwd), full_env, timeout)
        if forked is not None:
            return forked
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env, check=False
    )


@pytest.fixture(scope="session")
def cifar_fixture(tmp_path_factory) -> list[str]:
    """Overrides pointing the CIFAR-10 data config at tiny generated batches."""
    from tests.fixtures import cifar10

    return cifar10.make(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available at {SHARED_DATA} (set DLLABS_DATA_DIR)")
    return SHARED_DATA


class StopAfterEpoch:
    """Test callback: end ``fit`` cleanly after epoch ``epoch``, like a job killed between epochs."""

    def __new__(cls, epoch: int = 0):
        import lightning as L

        class _Stop(L.Callback):
            def on_train_epoch_end(self, trainer, pl_module):
                if trainer.current_epoch >= epoch:
                    trainer.should_stop = True

        return _Stop()


def interrupt_after(epoch: int) -> list[str]:
    """Overrides that add :class:`StopAfterEpoch` to a run's callbacks."""
    return ["+callbacks.interrupt._target_=tests.conftest.StopAfterEpoch", f"+callbacks.interrupt.epoch={epoch}"]
