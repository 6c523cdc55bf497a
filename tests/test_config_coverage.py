"""Every constructor argument that some option in conf/ sets has a type the check before launch can read.

Every option of every config group (the experiments included) is composed on top of the default, every node with a
``_target_`` is reached, and each key it sets must be an argument its target declares with a type pydantic checks
(or an object built on its own). So a new argument, a new option or a new constructor cannot go unchecked.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig

from dllabs.config_schema import _instantiable_nodes, _is_object
from dllabs.dry_build import lora_arguments
from dllabs.signature_check import signature_of
from tests.conftest import CONF_DIR

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")  # hydra/: Hydra's plugins
OPTIONS = [(group, p.stem) for group in GROUPS for p in sorted((CONF_DIR / group).glob("*.yaml"))]


def _unchecked(cfg: DictConfig) -> list[str]:
    problems = []
    nodes = _instantiable_nodes(cfg)
    if isinstance(cfg.get("finetune"), DictConfig) and cfg.finetune.get("method") == "lora":
        nodes.append(("finetune", lora_arguments(cfg.finetune), "peft.LoraConfig"))  # its keys go to LoraConfig
    for path, node, target in nodes:
        signature = signature_of(target)
        if signature is None:
            problems.append(f"{path}: {target} has no readable signature")
            continue
        for key in node:
            if key in _HYDRA_KEYS or (isinstance(node, DictConfig) and _is_object(node._get_node(key))):
                continue
            if key not in signature.annotations or key in signature.untyped:
                problems.append(f"{path}.{key}: {target} declares no type for it")
    return problems


@pytest.fixture(scope="module")
def composed():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda overrides: compose("train", overrides=overrides)
    GlobalHydra.instance().clear()


def test_every_group_is_walked():
    assert {"data", "model", "optimizer", "scheduler", "regularizer", "trainer", "callbacks", "logger",
            "experiment"} <= set(GROUPS)
    assert len(OPTIONS) > 60


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_argument_an_option_sets_is_typed(group, option, composed):
    cfg = composed([f"{group}={option}"])
    assert _instantiable_nodes(cfg), "nothing to build"
    assert _unchecked(cfg) == []


def test_an_untyped_argument_is_found(composed):
    """The walk really fails on an argument without a type (``architecture`` of causal_lm takes any mapping, but
    a key no signature names, as a user's new option would set, is reported)."""
    cfg = composed(["+model.net.brand_new=1"])
    assert _unchecked(cfg) == ["model.net.brand_new: dllabs.nets.simplenn.SimpleNN declares no type for it"]
    assert isinstance(cfg.trainer.plugins, ListConfig)
