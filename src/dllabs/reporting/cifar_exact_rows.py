"""Test accuracy of a finished CIFAR-10 run on the exact and on the JPEG-re-encoded test rows of ../shared/data.

Only for the shared offline copy of CIFAR-10, whose ``test_lossless_mask.npy`` marks the 1,000 exact rows (the
other 9,000 were re-encoded as JPEGs, which costs a trained net several points); the mask belongs to that copy of
the data, not to the product, so nothing is computed without it. The ledger (labs 3 and 5) calls it per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def exact_row_accuracy(run_dir: Path) -> dict[str, Any]:
    """``test_acc_exact_rows``, ``test_acc_jpeg_rows`` and ``exact_rows`` of the run's best checkpoint; ``{}``
    when the run's data folder has no mask or its test batch no labels."""
    import numpy as np
    import torch

    from dllabs.class_predictions import predict_probabilities
    from dllabs.runs import load_run_config, restore_run

    cfg = load_run_config(run_dir)
    batches = Path(cfg.paths.data_dir) / "cifar-10-batches-py"
    mask_file = batches / "test_lossless_mask.npy"
    if not mask_file.exists():
        return {}
    run = restore_run(run_dir)
    data = run.datamodule.prediction_data(input=str(batches / "test_batch"), text=None)
    if data.labels is None:
        return {}
    probabilities = predict_probabilities(run.task, data.loader, "cpu")
    correct = (probabilities.argmax(1) == torch.as_tensor(data.labels)).numpy()
    mask = np.load(mask_file, allow_pickle=False).astype(bool)
    return {
        "test_acc_exact_rows": float(correct[mask].mean()),
        "test_acc_jpeg_rows": float(correct[~mask].mean()),
        "exact_rows": int(mask.sum()),
    }
