"""Issue 13b: each experiment keeps the lab's reference settings (the lab references of docs/labs.md and the experiments' header comments).

An edit that changes a lab's protocol (batch size, learning rate, schedule, epochs, LoRA settings, splits, vocabulary
rules) fails here; a deliberate change edits this table with the reason.
"""

import pytest
from omegaconf import OmegaConf

from tests.conftest import compose_config

LAB_SETTINGS = {
    "lms": {  # lab 1: 100 points, noise 0.01, start [0.53, 0.20, 0.10], r 0.005, 20 epochs, one update per sample
        "data.num_samples": 100, "data.noise_std": 0.01, "data.true_weights": [1.0, 1.0, -2.0],
        "model.net.initial_weights": [0.53, 0.20, 0.10], "optimizer._target_": "torch.optim.SGD",
        "optimizer.lr": 0.005, "optimizer.momentum": 0.0, "optimizer.weight_decay": 0.0, "scheduler": None,
        "regularizer": {}, "trainer.max_epochs": 20,
    },
    "simplenn_cifar10": {  # lab 3: batch 128 / eval 100, SGD 0.01 m0.9, L2 1e-4, 30 epochs, fixed LR, 45k/5k split
        "data.batch_size": 128, "data.eval_batch_size": 100, "data.augment": "none", "data.val_size": 5000,
        "optimizer._target_": "torch.optim.SGD", "optimizer.lr": 0.01, "optimizer.momentum": 0.9,
        "optimizer.weight_decay": 0.0, "regularizer._target_": "dllabs.regularizers.L2",
        "regularizer.strength": 1.0e-4, "scheduler._target_": "dllabs.schedules.constant",
        "scheduler.warmup_steps": 0, "trainer.max_epochs": 30, "optimized_metric": "val/acc",
    },
    "simplenn_cifar10_decay": {  # lab 3 with x0.5 every 5 epochs
        "optimizer.lr": 0.01, "optimizer.momentum": 0.9, "regularizer.strength": 1.0e-4,
        "scheduler._target_": "dllabs.schedules.step", "scheduler.step_epochs": 5, "scheduler.gamma": 0.5,
        "trainer.max_epochs": 30, "data.batch_size": 128,
    },
    "simplenn_robust": {  # lab 4 best: crop+flip, BN, Swish, SGD 0.05 m0.9, L2 1e-4, 60 epochs cosine
        "data.augment": "crop_flip", "model.net.norm": "batchnorm", "model.net.activation": "swish",
        "optimizer.lr": 0.05, "optimizer.momentum": 0.9, "regularizer._target_": "dllabs.regularizers.L2",
        "regularizer.strength": 1.0e-4, "scheduler._target_": "dllabs.schedules.cosine", "trainer.max_epochs": 60,
        "data.batch_size": 128,
    },
    "resnet20": {  # lab 5, He et al. 2016: SGD 0.1 m0.9 wd 1e-4, batch 128, crop+flip, 200 epochs, x0.1 at 50%/75%
        "model.net.depth": 20, "model.net.shortcut": "A", "data.batch_size": 128, "data.augment": "crop_flip",
        "optimizer._target_": "torch.optim.SGD", "optimizer.lr": 0.1, "optimizer.momentum": 0.9,
        "optimizer.weight_decay": 1.0e-4, "regularizer": {}, "scheduler._target_": "dllabs.schedules.multistep",
        "scheduler.milestones": [0.5, 0.75], "scheduler.gamma": 0.1, "trainer.max_epochs": 200,
    },
    "resnet20_fast": {  # lab 5 fast recipe: the same ResNet-20 (A) in <= 60 epochs, batch 256, lr 0.2 Nesterov,
        # wd 5e-4, 2 warm-up epochs then cosine to zero, label smoothing 0.1, EMA 0.999, flip TTA
        "model.net.depth": 20, "model.net.shortcut": "A", "data.batch_size": 256, "data.augment": "crop_flip",
        "optimizer._target_": "torch.optim.SGD", "optimizer.lr": 0.2, "optimizer.momentum": 0.9,
        "optimizer.nesterov": True, "optimizer.weight_decay": 5.0e-4, "regularizer": {},
        "scheduler._target_": "dllabs.schedules.cosine", "scheduler.min_factor": 0.0, "trainer.max_epochs": 60,
        "model.label_smoothing": 0.1, "model.tta_flip": True, "callbacks.ema.decay": 0.999,
    },
    "resnet20_fast_cpu": {  # the fast recipe for a 2-core CPU with native bf16: same net and optimiser, 28 epochs,
        # EMA 0.998, channels_last, precision by detection (bf16-mixed where the CPU has it)
        "model.net.depth": 20, "model.net.shortcut": "A", "data.batch_size": 256, "data.augment": "crop_flip",
        "optimizer._target_": "torch.optim.SGD", "optimizer.lr": 0.2, "optimizer.momentum": 0.9,
        "optimizer.nesterov": True, "optimizer.weight_decay": 5.0e-4, "regularizer": {},
        "scheduler._target_": "dllabs.schedules.cosine", "scheduler.min_factor": 0.0, "trainer.max_epochs": 28,
        "model.label_smoothing": 0.1, "model.tta_flip": True, "callbacks.ema.decay": 0.998,
        "channels_last": True, "cpu_precision": "auto",
    },
    "lstm_imdb": {  # lab 6 reference: emb 1, hidden 100, 1 layer, dropout 0, Adam 1e-3 eps 1e-6, warm-up 200,
        # batch 96, 5 epochs, seed 12, 256 tokens; split 7:1:2 with a seed; vocabulary: train split, freq >= 5
        "model.net.embedding_dim": 1, "model.net.hidden_size": 100, "model.net.num_layers": 1,
        "model.net.bidirectional": False, "model.net.dropout": 0.0, "optimizer._target_": "torch.optim.Adam",
        "optimizer.lr": 1.0e-3, "optimizer.eps": 1.0e-6, "scheduler._target_": "dllabs.schedules.constant",
        "scheduler.warmup_steps": 200, "data.batch_size": 96, "trainer.max_epochs": 5, "seed": 12,
        "data.max_length": 256, "data.split": [0.7, 0.1, 0.2], "data.split_seed": 12, "data.min_freq": 5,
        "model.net.init": "template", "model.net.embedding_init_std": None,  # the course template's initialisation
    },
    "lstm_imdb_strong": {  # lab 6 better setting: 128-d, BiLSTM 128, max-pool, dropout 0.5, 512 tokens, Adam 2e-3
        "model.net.embedding_dim": 128, "model.net.hidden_size": 128, "model.net.bidirectional": True,
        "model.net.pooling": "max", "model.net.dropout": 0.5, "data.max_length": 512, "optimizer.lr": 2.0e-3,
        "optimizer.eps": 1.0e-6, "scheduler._target_": "dllabs.schedules.cosine", "scheduler.warmup_steps": 200,
        "trainer.max_epochs": 5, "seed": 12, "data.split": [0.7, 0.1, 0.2], "data.min_freq": 5,
    },
    "gpt2_full": {  # lab 7: AdamW 5e-5, 500 warm-up then linear, batch 8, 3 epochs, first 10%, lines padded to 1024
        "finetune.method": "full", "optimizer._target_": "torch.optim.AdamW", "optimizer.lr": 5.0e-5,
        "optimizer.weight_decay": 0.0, "scheduler._target_": "dllabs.schedules.linear", "scheduler.warmup_steps": 500,
        "scheduler.end_factor": 0.0, "data.batch_size": 8, "trainer.max_epochs": 3, "data.fraction": 0.1,
        "data.block_size": 1024, "data.protocol": "lab", "optimized_metric": "val/ppl",
    },
    "gpt2_lora": {  # lab 7 LoRA: r 64, alpha 16, dropout 0.1 on c_attn; the rest as gpt2_full
        "finetune.method": "lora", "finetune.r": 64, "finetune.lora_alpha": 16, "finetune.lora_dropout": 0.1,
        "finetune.target_modules": ["c_attn"], "optimizer.lr": 5.0e-5, "optimizer.weight_decay": 0.0,
        "scheduler.warmup_steps": 500, "data.batch_size": 8, "trainer.max_epochs": 3, "data.fraction": 0.1,
        "data.block_size": 1024,
    },
}


@pytest.mark.parametrize("experiment", sorted(LAB_SETTINGS))
def test_experiment_keeps_the_labs_reference_settings(experiment, tmp_path):
    cfg = compose_config([f"experiment={experiment}"], tmp_path)
    for key, expected in LAB_SETTINGS[experiment].items():
        value = OmegaConf.select(cfg, key)
        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        assert value == expected, f"experiment={experiment}: {key} is {value!r}, the lab's setting is {expected!r}"


def test_every_experiment_has_its_lab_settings_pinned():
    from tests.conftest import CONF_DIR

    assert sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")) == sorted(LAB_SETTINGS)
