"""DDP on the CPU (2 gloo processes): one checkpoint set, metrics.json from rank 0 only, metrics synced over ranks."""

from __future__ import annotations

import json
import math
import types

import pytest

from tests.conftest import QUIET, run_cli


@pytest.mark.slow
def test_two_process_ddp_run_writes_one_result_set_with_synced_metrics(cifar_fixture, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        [
            "train.py", *cifar_fixture, *QUIET, "trainer=ddp_cpu", "trainer.max_epochs=2", "data.train_subset=128",
            "optimizer.lr=0.05", "logger=csv", f"hydra.run.dir={run_dir}",
        ],
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and checkpoints[1] == "last.ckpt" and checkpoints[0].startswith("best-epoch")
    log_text = (run_dir / "simplenn_cifar10.log").read_text()
    assert log_text.count("metrics written to") == 1, "every rank wrote metrics.json; only rank 0 may"
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log_text and "distributed_backend=gloo" in log_text

    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok" and record["epochs_completed"] == 2
    best = next(row for row in record["history"] if row["epoch"] == record["best_epoch"])

    single = _validate_in_one_process(run_dir, checkpoints[0])
    # 50 validation images, 25 per rank: only metrics reduced over both ranks equal the one-process numbers
    assert math.isclose(best["val/acc"], single["val/acc"], abs_tol=1e-6)
    assert math.isclose(best["val/loss"], single["val/loss"], rel_tol=1e-4)


def _validate_in_one_process(run_dir, checkpoint_name) -> dict[str, float]:
    import lightning as L

    from dllabs.runs import instantiate_datamodule, instantiate_task, load_run_config, load_task_weights

    cfg = load_run_config(run_dir)
    task = instantiate_task(cfg)
    load_task_weights(task, run_dir / "checkpoints" / checkpoint_name)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    (metrics,) = trainer.validate(task, datamodule=instantiate_datamodule(cfg), verbose=False)
    return {key: float(value) for key, value in metrics.items()}


def test_spawned_workers_hand_callback_state_back_to_the_main_process():
    from dllabs.callbacks.run_record import RunRecord
    from dllabs.distributed import _CallbackStateLauncher

    worker_record = RunRecord("unused")
    worker_record.history = [{"epoch": 0, "val/acc": 0.5}, {"epoch": 1, "val/acc": 0.75}]
    worker_record.fit_metrics = {"val/acc": 0.75}
    worker = types.SimpleNamespace(callbacks=[worker_record], callback_metrics={})
    main_record = RunRecord("unused")
    main = types.SimpleNamespace(callbacks=[main_record], callback_metrics={})

    launcher = _CallbackStateLauncher(strategy=None, start_method="spawn")
    launcher.update_main_process_results(main, launcher.get_extra_results(worker))
    assert main_record.history == worker_record.history and main_record.fit_metrics == {"val/acc": 0.75}


def test_ddp_presets_compose(tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import compose_config

    cfg = compose_config(["trainer=ddp_spawn", "trainer.accelerator=cpu", "trainer.devices=2"], tmp_path)
    strategy = instantiate(cfg.trainer.strategy)
    assert type(strategy).__name__ == "SpawnDDPStrategy" and strategy._start_method == "spawn"
    cpu = compose_config(["trainer=ddp_cpu"], tmp_path)
    assert (cpu.trainer.strategy, cpu.trainer.accelerator, cpu.trainer.devices) == ("ddp", "cpu", 2)
