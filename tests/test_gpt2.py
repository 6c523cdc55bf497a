"""GPT-2 lab: the net, perplexity (exact and the lab's), full and LoRA fine-tuning, the reporting callbacks
(samples before/after, export, throughput), generation, clear loading errors."""

from __future__ import annotations

import json
import math
from functools import partial

import lightning as L
import pytest
import torch

from dllabs import schedules
from dllabs.callbacks.hf_export import HuggingFaceExport
from dllabs.callbacks.perplexity import PerplexityRecord
from dllabs.callbacks.results import collect_results
from dllabs.callbacks.text_samples import TextSamples
from dllabs.callbacks.throughput import PeakMemory, TokenThroughput
from dllabs.data.wikitext import WikiTextDataModule, collate
from dllabs.errors import ConfigError
from dllabs.lm import finetune as ft
from dllabs.lm.perplexity import evaluate, sliding_window, token_nll
from dllabs.lm.pretrained import PretrainedNotFoundError, load_causal_lm, load_tokenizer
from dllabs.lm.text_generation import GenerationSettings, generate
from dllabs.nets.causal_lm import causal_lm, lora_trainable_parameters
from dllabs.tasks.language_model import LanguageModelTask
from tests.conftest import compose_config, run_train
from tests.fixtures import wikitext as fixture

LORA = {"method": "lora", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["c_attn"],
        "fan_in_fan_out": True}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt2")
    overrides = fixture.make(root)
    return root, str(root / "tiny-gpt2"), overrides


def datamodule(root, model_dir, **kwargs) -> WikiTextDataModule:
    options = {"block_size": 32, "batch_size": 8, "local_files_only": True, **kwargs}
    return WikiTextDataModule(data_dir=root, tokenizer=model_dir, **options)


def lm_callbacks() -> list[L.Callback]:
    return [PerplexityRecord(), TextSamples(prompts=["The river"], generation={"max_new_tokens": 6}),
            HuggingFaceExport(), PeakMemory(), TokenThroughput()]


def fit(root, model_dir, run_dir, finetune, lr, epochs=2, lab_perplexity=False):
    """Train the tiny model with the lab's callbacks; returns (task, datamodule, metrics.json results)."""
    net = causal_lm(pretrained=model_dir, finetune=finetune, local_files_only=True)
    task = LanguageModelTask(
        net=net, optimizer=partial(torch.optim.AdamW, lr=lr, weight_decay=0.0),
        scheduler=partial(schedules.linear, warmup_steps=2), lab_perplexity=lab_perplexity,
    )
    callbacks = lm_callbacks()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=str(run_dir), callbacks=callbacks)
    dm = datamodule(root, model_dir)
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    return task, dm, collect_results(callbacks)


def logits_of(model, batch):
    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_perplexity_is_exp_of_the_models_own_mean_loss(tiny):
    root, model_dir, _ = tiny
    model = load_causal_lm(model_dir, local_files_only=True).eval()
    dm = datamodule(root, model_dir, protocol="lab")
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert (batch["labels"] == -100).any()
    with torch.no_grad():
        out = model(**batch)
    nll, count = token_nll(out.logits, batch["labels"])
    assert int(count) == int((batch["labels"][:, 1:] != -100).sum())
    assert math.exp(float(nll / count)) == pytest.approx(math.exp(float(out.loss)), rel=1e-5)
    whole = evaluate(model, dm.val_dataloader())
    with torch.no_grad():
        by_hand = [model(**b) for b in dm.val_dataloader()]
    tokens = [int((b["labels"][:, 1:] != -100).sum()) for b in dm.val_dataloader()]
    mean = sum(float(o.loss.detach()) * n for o, n in zip(by_hand, tokens)) / sum(tokens)
    assert whole["tokens"] == sum(tokens) and whole["ppl"] == pytest.approx(math.exp(mean), rel=1e-5)


def test_exact_and_lab_maskcount_perplexity_match_a_hand_computation(tiny):
    _, model_dir, _ = tiny
    task = LanguageModelTask(net=causal_lm(pretrained=model_dir, local_files_only=True),
                             optimizer=partial(torch.optim.AdamW, lr=1e-3), lab_perplexity=True)
    examples = [[5, 9, 13, 2, 7], [], [11, 3], [4, 8, 15, 16]]  # an empty line and a 2-token one among them
    batches = [collate(examples[:2], pad_id=0, pad_to=8), collate(examples[2:], pad_id=0, pad_to=8)]
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    [metrics] = trainer.validate(task, dataloaders=torch.utils.data.DataLoader(batches, batch_size=None), verbose=False)
    net = task.net.eval()
    nll = 0.0
    for tokens in examples:
        if len(tokens) < 2:
            continue
        with torch.no_grad():
            log_probs = net(input_ids=torch.tensor([tokens])).logits[0].log_softmax(-1)
        nll -= sum(float(log_probs[t, tokens[t + 1]]) for t in range(len(tokens) - 1))
    predicted = sum(max(0, len(tokens) - 1) for tokens in examples)  # 4 + 0 + 1 + 3 = 8
    attended = sum(len(tokens) for tokens in examples)  # 11: the first token of each line is never predicted
    assert metrics["val/ppl"] == pytest.approx(math.exp(nll / predicted), rel=1e-4)
    assert metrics["val/ppl_lab_maskcount"] == pytest.approx(math.exp(nll / attended), rel=1e-4)


def test_a_batch_of_only_empty_lines_adds_no_loss_and_no_nan(tiny):
    _, model_dir, _ = tiny
    task = LanguageModelTask(net=causal_lm(pretrained=model_dir, local_files_only=True),
                             optimizer=partial(torch.optim.AdamW, lr=1e-3))
    empty = collate([[], [], []], pad_id=0, pad_to=16)
    loss = task.training_step(empty, 0)
    assert loss.item() == 0.0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in task.net.parameters() if p.grad is not None)
    line = [5, 9, 13, 2, 7]
    task.net.eval()  # no dropout: the same line must give the same loss with or without empty neighbours
    alone = task.training_step(collate([line], pad_id=0, pad_to=16), 0)
    mixed = task.training_step(collate([[], line, []], pad_id=0, pad_to=16), 0)
    assert mixed.item() == pytest.approx(alone.item(), rel=1e-5)


def test_lora_parameters_of_the_real_gpt2_shape_are_counted_from_the_config_alone():
    from transformers import GPT2Config

    lab = {"r": 64, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["c_attn"], "fan_in_fan_out": True}
    config = GPT2Config()  # the 124M gpt2 shape: 12 layers, 768 wide; c_attn maps 768 -> 3 x 768
    assert lora_trainable_parameters(lab) == config.n_layer * 64 * (config.n_embd + 3 * config.n_embd) == 2_359_296
    assert lora_trainable_parameters({**lab, "r": 8}, {"n_layer": 2}) == 2 * 8 * 4 * 768


def test_analysis_builds_the_gpt2_net_without_task_or_optimizer(tiny, tmp_path):
    from dllabs.analysis.cli import build_net

    _, model_dir, _ = tiny
    cfg = compose_config(["model=gpt2", f"model.net.pretrained={model_dir}", "model.net.local_files_only=true"],
                         tmp_path, config_name="analyze")
    assert "optimizer" not in cfg
    net = build_net(cfg)
    assert type(net).__name__ == "GPT2LMHeadModel" and net.config.n_positions == 128


def test_sliding_window_scores_every_token_once(tiny):
    _, model_dir, _ = tiny
    model = load_causal_lm(model_dir, local_files_only=True).eval()
    ids = torch.randint(0, model.config.vocab_size, (150,), generator=torch.Generator().manual_seed(0))
    overlapping = sliding_window(model, ids, window=64, stride=16)
    assert overlapping["tokens"] == 149
    disjoint = sliding_window(model, ids, window=50, stride=50)
    with torch.no_grad():
        parts = [token_nll(model(input_ids=ids[s : s + 50][None]).logits, ids[s : s + 50][None]) for s in (0, 50, 100)]
    assert disjoint["tokens"] == 147
    assert disjoint["nll_sum"] == pytest.approx(sum(float(n) for n, _ in parts), rel=1e-5)


def test_full_finetuning_lowers_val_perplexity_and_exports_the_model(tiny, tmp_path):
    root, model_dir, _ = tiny
    task, dm, results = fit(root, model_dir, tmp_path, {"method": "full"}, lr=1e-2)
    ppl = results["perplexity"]
    assert ppl["val_after"] < 0.5 * ppl["val_before"], ppl
    assert ppl["test"] is not None and len(ppl["val_per_epoch"]) == 2
    assert "lab_maskcount" not in ppl  # only when the task is asked for the lab's number
    assert results["params"]["trainable"] == results["params"]["total"] == sum(p.numel() for p in task.net.parameters())
    assert results["finetune"] == "full" and results["data"]["protocol"] == "lab"
    assert len(results["loss_per_epoch"]["train"]) == len(results["loss_per_epoch"]["val"]) == 2
    [sample] = results["samples"]
    assert sample["prompt"] == "The river" and sample["text"] != sample["text_before"]  # greedy, before vs after
    assert results["tokens_per_s"] > 0 and results["train_tokens"] == 2 * dm.token_counts["train"]
    assert results["padded_tokens_per_s"] > results["tokens_per_s"]  # the lab protocol pays for padding
    assert results["train_steps"] == 2 * len(dm.train_dataloader())  # 2 epochs of optimiser steps
    json.dumps(results)
    reloaded = load_causal_lm(results["exports"]["model"], local_files_only=True)
    batch = next(iter(dm.val_dataloader()))
    assert torch.allclose(logits_of(reloaded, batch), logits_of(task.net, batch), atol=1e-5)


def test_lora_trains_only_adapters_which_reload_to_the_same_logits(tiny, tmp_path):
    root, model_dir, _ = tiny
    base_before = load_causal_lm(model_dir, local_files_only=True).state_dict()
    task, dm, results = fit(root, model_dir, tmp_path, LORA, lr=3e-2)
    config = task.net.config
    assert results["params"]["trainable"] == config.n_layer * LORA["r"] * (config.n_embd + 3 * config.n_embd)
    trained = {n for n, p in task.net.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    base_after = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                  for k, v in task.net.state_dict().items() if "lora_" not in k}
    assert set(base_before) <= set(base_after)
    assert all(torch.equal(base_before[k], base_after[k]) for k in base_before), "LoRA changed a base weight"
    ppl = results["perplexity"]
    assert ppl["val_after"] < 0.95 * ppl["val_before"], ppl
    batch = next(iter(dm.val_dataloader()))
    expected = logits_of(task.net, batch)
    adapter = ft.load_adapter(load_causal_lm(model_dir, local_files_only=True), results["exports"]["adapter"])
    assert torch.allclose(logits_of(adapter, batch), expected, atol=1e-5)
    merged = load_causal_lm(results["exports"]["model"], local_files_only=True)
    assert not hasattr(merged, "peft_config")
    assert torch.allclose(logits_of(merged, batch), expected, atol=1e-4)
    assert not torch.allclose(logits_of(load_causal_lm(model_dir, local_files_only=True), batch), expected, atol=1e-4)


def test_generation_returns_text(tiny):
    _, model_dir, _ = tiny
    model, tokenizer = load_causal_lm(model_dir, local_files_only=True), load_tokenizer(model_dir, True)
    greedy = generate(model, tokenizer, ["The river", "The castle was"], GenerationSettings(max_new_tokens=5))
    assert [s["prompt"] for s in greedy] == ["The river", "The castle was"]
    assert all(s["text"].startswith(s["prompt"]) and len(s["text"]) > len(s["prompt"]) for s in greedy)
    assert greedy == generate(model, tokenizer, ["The river", "The castle was"], GenerationSettings(max_new_tokens=5))
    sampled = generate(model, tokenizer, ["The river"],
                       GenerationSettings(max_new_tokens=5, do_sample=True, num_return_sequences=3, seed=1))
    assert len(sampled) == 3
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    generate(model, tokenizer, ["The river"], GenerationSettings(max_new_tokens=3, do_sample=True, seed=1))
    assert torch.equal(torch.rand(3), expected), "a seeded generation must not reseed the training around it"
    lab = generate(model, tokenizer, ["The river"], GenerationSettings(max_length=20))
    assert 15 <= len(tokenizer(lab[0]["text"])["input_ids"]) <= 20, "max_length counts the prompt's tokens too"
    with pytest.raises(ConfigError, match="do_sample"):
        GenerationSettings(num_return_sequences=2).generate_kwargs()


def test_missing_model_folder_and_offline_hub_name_say_how_to_provide_weights(tmp_path):
    with pytest.raises(PretrainedNotFoundError, match="does not exist.*save_pretrained"):
        load_causal_lm(str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PretrainedNotFoundError, match="has no config.json"):
        load_causal_lm(str(tmp_path / "empty"))
    with pytest.raises(PretrainedNotFoundError, match=r"(?s)'gpt2'.*hf download gpt2.*model.net.pretrained=DIR"):
        load_causal_lm("gpt2", local_files_only=True)
    with pytest.raises(PretrainedNotFoundError, match="hf download"):
        load_tokenizer("gpt2", local_files_only=True)


def test_bad_finetune_settings_are_config_errors(tiny):
    _, model_dir, _ = tiny
    model = load_causal_lm(model_dir, local_files_only=True)
    with pytest.raises(ConfigError, match="full|lora"):
        ft.prepare(model, {"method": "prefix"})
    with pytest.raises(ConfigError, match="c_attn"):
        ft.prepare(model, {"method": "lora", "target_modules": ["q_proj"]})


def test_block_size_beyond_the_models_context_is_a_config_error(tiny, tmp_path):
    root, model_dir, _ = tiny
    net = causal_lm(pretrained=model_dir, local_files_only=True)
    task = LanguageModelTask(net=net, optimizer=partial(torch.optim.AdamW, lr=1e-3))
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="batches of 256 tokens exceed the model's context of 128 tokens"):
        trainer.fit(task, datamodule=datamodule(root, model_dir, block_size=256))


@pytest.mark.slow
def test_lora_experiment_runs_end_to_end_and_generates_from_the_run(tiny, tmp_path, capsys):
    from omegaconf import OmegaConf

    from dllabs.generation import generate_from_config
    from dllabs.reporting.lm_compare import report

    _, _, overrides = tiny
    run = tmp_path / "lora"
    _, run_cfg = run_train(["experiment=gpt2_lora", *overrides, "trainer.max_epochs=1",
                            "callbacks.perplexity.sliding_stride=16", "optimizer.lr=3e-2", "scheduler.warmup_steps=2"], run)
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok", record.get("error")
    results = record["results"]
    assert results["finetune"] == "lora" and results["params"]["trainable"] == 2 * 64 * (32 + 96)
    metrics = record["metrics"]
    assert {"val/ppl", "val/ppl_lab_maskcount", "test/ppl", "test/ppl_lab_maskcount", "test/ppl_sliding"} <= set(metrics)
    assert metrics["val/ppl_lab_maskcount"] < metrics["val/ppl"]  # more tokens in the denominator, same NLL
    lab = results["perplexity"]["lab_maskcount"]
    assert lab["val_before"] > lab["val_after"] and lab["test"] == pytest.approx(metrics["test/ppl_lab_maskcount"])
    # the lab's prompt, continued greedily to 100 tokens by the untouched and the trained model, side by side
    [sample] = results["samples"]
    assert sample["prompt"] == "GPT-2 is a langugae model based on transformer(s) developed by OpenAI"
    assert sample["text_before"].startswith(sample["prompt"]) and sample["text"] != sample["text_before"]
    assert results["generation"]["max_length"] == 100 and results["generation"]["do_sample"] is False
    assert results["tokens_per_s"] > 0 and results["peak_memory_mb"] > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [event_dir] = {f.parent for f in (run / "tensorboard").rglob("events.out.tfevents.*")}  # <run>/tensorboard/<name>
    events = EventAccumulator(str(event_dir), size_guidance={"tensors": 0}).Reload()
    text = events.Tensors("samples/0/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "before training | after training" in text and "langugae" in text
    assert (run / "lora_adapter" / "adapter_config.json").is_file() and (run / "hf_model" / "config.json").is_file()
    cfg = OmegaConf.create({"run_dir": str(run), "prompt": "The river", "prompts": [], "max_new_tokens": 4,
                            "device": "cpu", "output": str(tmp_path / "samples.json")})
    samples = generate_from_config(cfg)
    assert samples[0]["text"].startswith("The river") and "hf_model" in capsys.readouterr().out
    # without the export, generation rebuilds the net from the run's config and checkpoint, the tokenizer from its data
    import shutil

    shutil.rmtree(run / "hf_model")
    (run / ".hydra").mkdir()  # what Hydra writes for train.py (run_train runs in-process)
    OmegaConf.save({key: value for key, value in run_cfg.items() if key != "hydra"}, run / ".hydra" / "config.yaml")
    again = generate_from_config(cfg)
    assert again == samples and "checkpoint" in capsys.readouterr().out
    text, written = report([run], out=tmp_path / "report")
    assert "trainable params" in text and "val ppl before" in text and results["samples"][0]["prompt"] in text
    assert (tmp_path / "report" / "lm_compare.png").is_file() and written


@pytest.mark.realdata
@pytest.mark.slow
def test_random_small_gpt2_with_the_real_tokenizer_learns_real_wikitext(shared_data, tmp_path):
    tokenizer = shared_data / "gpt2-tokenizer"
    if not (shared_data / "wikitext-2-raw" / "wiki.valid.raw").exists() or not tokenizer.is_dir():
        pytest.skip("WikiText-2 raw or the GPT-2 tokenizer is not in the shared data folder")
    arch = "{model_type:gpt2,n_layer:2,n_head:2,n_embd:64,n_positions:128}"
    run = tmp_path / "real"
    run_train(["experiment=gpt2_full", f"data.data_dir={shared_data}", "data.fraction=0.02", "data.block_size=64",
               "data.batch_size=8", "data.protocol=packed", "data.splits.train=validation", "data.splits.val=test",
               "model.net.pretrained=null", f"model.net.architecture={arch}", f"data.tokenizer={tokenizer}",
               "model.net.local_files_only=true", "callbacks.hf_export=null",
               "trainer.max_epochs=2", "trainer.limit_val_batches=3", "trainer.limit_test_batches=3",
               "optimizer.lr=1e-2", "scheduler.warmup_steps=2"], run)
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok", record.get("error")
    ppl = record["results"]["perplexity"]
    assert ppl["val_before"] > 20000  # random weights over GPT-2's 50,257 tokens
    assert ppl["val_after"] < 0.3 * ppl["val_before"], ppl
    assert record["metrics"]["test/ppl"] < 0.3 * ppl["val_before"]
    assert record["results"]["data"]["splits"] == {"train": "validation", "val": "test", "test": "test"}


@pytest.mark.slow
def test_generate_script_prints_text_and_reports_a_missing_model(tiny, tmp_path):
    from tests.conftest import run_cli

    _, model_dir, _ = tiny
    ok = run_cli(["scripts/generate.py", f"model.pretrained={model_dir}", "model.local_files_only=true",
                  "prompt=The river", "max_new_tokens=4"], env={"HF_HUB_OFFLINE": "1"})
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "--- 'The river'\nThe river" in ok.stdout
    missing = run_cli(["scripts/generate.py", f"model.pretrained={tmp_path / 'nothing'}"], env={"HF_HUB_OFFLINE": "1"})
    assert missing.returncode == 2 and "error:" in missing.stderr and "does not exist" in missing.stderr


@pytest.mark.slow
def test_a_resumed_run_keeps_the_perplexity_and_samples_from_before_training(tiny, tmp_path):
    from tests.conftest import interrupt_after

    _, _, overrides = tiny
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["experiment=gpt2_full", *overrides, "trainer.max_epochs=2", "callbacks.hf_export=null",
              "optimizer.lr=1e-2", "scheduler.warmup_steps=2"]
    run_train([*common, *interrupt_after(0)], first)
    before = json.loads((first / "metrics.json").read_text())["results"]
    assert len(before["perplexity"]["val_per_epoch"]) == 1
    run_train([*common, f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}"], second)
    after = json.loads((second / "metrics.json").read_text())["results"]
    assert after["perplexity"]["val_before"] == before["perplexity"]["val_before"]  # not re-measured mid-run
    assert after["perplexity"]["val_per_epoch"][0] == before["perplexity"]["val_per_epoch"][0]
    assert len(after["perplexity"]["val_per_epoch"]) == 2
    assert after["samples"][0]["text_before"] == before["samples"][0]["text_before"]
