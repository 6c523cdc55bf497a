"""Library objects built once, cheaply, before a run starts, so that the library's own constructor checks speak
before any folder exists: Lightning's ``Trainer`` (no logger, no callbacks), the optimiser over a dummy parameter,
peft's ``LoraConfig``. A failure is one :class:`~dllabs.errors.ConfigError` line naming the key to blame (found by
building again without each key) and the library's own message.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from dllabs.errors import ConfigError
from dllabs.signature_check import shown

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No log lines and no warnings from a dry build (the real build says them once, in the run's log)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _cause(err: BaseException) -> BaseException:
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


def _message(err: BaseException) -> str:
    return " ".join(str(err).split())


def _try(build: Callable[[DictConfig], Any], node: DictConfig) -> BaseException | None:
    try:
        with _quiet():
            build(node)
    except Exception as err:  # noqa: BLE001 - the library's own check, whatever it raises
        return _cause(err)
    return None


def _defaults(node: DictConfig) -> dict[str, Any]:
    try:
        parameters = inspect.signature(get_object(node._target_)).parameters.values()
    except Exception:  # noqa: BLE001 - no readable signature: keys are left out instead of reset
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _culprit(build: Callable[[DictConfig], Any], node: DictConfig) -> str | None:
    """The key whose reset to the library's default (or removal) lets ``node`` build."""
    defaults = _defaults(node) if "_target_" in node else {}
    for key in node:
        if key in _HYDRA_KEYS:
            continue
        trimmed = node.copy()
        with open_dict(trimmed):
            if key in defaults and isinstance(defaults[key], (str, int, float, bool, type(None))):
                trimmed[key] = defaults[key]
            else:
                del trimmed[key]
        if _try(build, trimmed) is None:
            return str(key)
    return None


def dry_build(node: DictConfig, path: str, build: Callable[[DictConfig], Any],
              hint: Callable[[str, DictConfig], str] | None = None) -> None:
    """Build ``node`` with ``build``; raise ConfigError naming the blamed key when the library refuses it."""
    err = _try(build, node)
    if err is None or isinstance(err, ConfigError):
        if err is not None:
            raise err
        return
    key = _culprit(build, node)
    where = f"{path}.{key}={shown(OmegaConf.to_container(node, resolve=True)[key])}" if key else path
    extra = hint(key, node) if (hint and key) else ""
    raise ConfigError(f"{where}: {_message(err).rstrip('.')}{extra}") from None


# ---- the Trainer ---------------------------------------------------------------------------------------------------
def build_trainer(node: DictConfig) -> Any:
    return instantiate(node, logger=False, callbacks=[], enable_progress_bar=False)


def trainer_hint(key: str, node: DictConfig) -> str:
    """What this machine offers, for the keys whose library message does not list it."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    def available() -> list[str]:
        def works(name: str) -> bool:
            try:
                return bool(AcceleratorRegistry[name]["accelerator"].is_available())
            except Exception:  # noqa: BLE001 - an accelerator whose package is missing
                return False

        return ["auto", *(name for name in AcceleratorRegistry.available_accelerators() if works(name))]

    if key == "accelerator":
        return f"; accelerators available here: {', '.join(available())}"
    if key == "devices":
        return "; give a positive number of devices, a list of device indices, -1 (all) or auto"
    return ""


# ---- the optimiser -------------------------------------------------------------------------------------------------
def build_optimizer(node: DictConfig) -> Any:
    import torch

    factory = instantiate(node)
    return factory([torch.nn.Parameter(torch.zeros(1))]) if callable(factory) else factory


# ---- peft's LoraConfig ---------------------------------------------------------------------------------------------
def lora_arguments(finetune: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in finetune.items() if key != "method"}


def build_lora_config(node: DictConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(**lora_arguments(OmegaConf.to_container(node, resolve=True)))
