"""Every job of a command line composed and checked before Hydra starts (and so before any folder exists).

:func:`check_command_line` composes ``conf/<command>.yaml`` with the command line's overrides as Hydra will: one
config for a run, every member for a ``-m`` sweep of Hydra's basic sweeper (its ``hydra.sweeper.params`` and the
command line's comma lists, expanded by the sweeper's own code), the base config for other sweepers (Optuna draws
its members later). Each config goes through :func:`~dllabs.config_schema.validate_config` and the model/data
pairing. Hydra's own errors (an unknown key, a missing group option, a malformed override) become one
:class:`~dllabs.errors.ConfigError` line too, with the nearest key or the list of options.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from dllabs.config_schema import CONF_DIR, validate_config
from dllabs.errors import ConfigError
from dllabs.input_files import check_input_files
from dllabs.job_folder import check_job_folder
from dllabs.pairings import check_pairing

_HYDRA_FLAGS = ("-m", "--multirun")  # the only flags checked here; with any other (--help, --cfg), Hydra answers
_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
_OPTUNA_SWEEPER = "hydra_plugins.dllabs_optuna_sweeper."


def _dotted_keys(node: DictConfig | ListConfig, path: str = "") -> list[str]:
    keys = []
    for key in (node.keys() if isinstance(node, DictConfig) else []):
        where = f"{path}.{key}" if path else str(key)
        keys.append(where)
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            keys.extend(_dotted_keys(child, where))
    return keys


def _one_line(text: str) -> str:
    first = str(text).split("\nConfig search path")[0]
    return " ".join(first.split())


def _hydra_error(err: HydraException, command: str, overrides: Sequence[str]) -> ConfigError:
    """Hydra's composition error as one line that names the key and what is allowed."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        return ConfigError(f"{group}={option}: no such option{_nearest(option, err.options)}; "
                           f"choose one of {', '.join(err.options)}")
    unknown = re.match(r"Could not override '([^']+)'", str(err))
    if unknown:
        key = unknown.group(1)
        typed = next((o for o in overrides if o.split("=", 1)[0] == key), key)
        others = [o for o in overrides if o != typed]
        try:
            known = _dotted_keys(compose(command, others))
        except HydraException:
            known = _dotted_keys(compose(command, []))
        return ConfigError(f"{typed}: no such key{_nearest(key, known)}")
    if isinstance(err, OverrideParseException):
        for override in overrides:
            try:
                OverridesParser.create().parse_overrides([override])
            except OverrideParseException as bad:
                return ConfigError(f"{override}: not a valid override ({_one_line(str(bad)).split(' See ')[0]})")
    ambiguous = re.match(r"Ambiguous value for argument '([^']+)'", str(err))
    if ambiguous:
        return ConfigError(f"{ambiguous.group(1)}: a sweep needs -m (--multirun); for a list write key=[a,b], "
                           "for text with a comma quote it: key='a,b'")
    return ConfigError(_one_line(str(err)))


def _nearest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _jobs(command: str, overrides: list[str], multirun: bool) -> list[list[str]]:
    """The overrides of every job Hydra will run for this command line."""
    if not multirun:
        return [overrides]
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    base = [o.input_line for o in parsed if not o.is_sweep_override()]
    cfg = compose(command, base, return_hydra_config=True)
    if OmegaConf.select(cfg, "hydra.sweeper._target_") != _BASIC_SWEEPER:
        return [base]  # a sweeper that draws its members as it goes (Optuna): the fixed part is checked
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    swept = parser.parse_overrides([f"{key}={value}" for key, value in params.items()]) + parsed
    return [job for batch in BasicSweeper.split_arguments(swept, None) for job in batch]


def _job_config(command: str, overrides: list[str], number: int | None) -> DictConfig:
    """One job's config as the job will see it, its output folder named (not made), set as Hydra's config."""
    cfg = compose(command, overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.cwd = os.getcwd()
        if number is not None:
            cfg.hydra.job.num = number
    HydraConfig.instance().set_config(cfg)  # the folder's name may read ${hydra:...} (analyze's task_name)
    with read_write(cfg.hydra), open_dict(cfg):  # set_config made the hydra node read-only
        run = cfg.hydra.run.dir if number is None else Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
        cfg.hydra.runtime.output_dir = str(Path(run).absolute())
    HydraConfig.instance().set_config(cfg)
    return cfg


def _check_job(command: str, overrides: list[str], number: int | None) -> None:
    """Check one job's config as the job will see it (its output folder named, not made)."""
    cfg = _job_config(command, overrides, number)
    validate_config(cfg)
    check_pairing(CONF_DIR, OmegaConf.select(cfg, "hydra.runtime.choices") or {})
    check_job_folder(cfg, multirun=number is not None)  # the run already in its folder, if any, is this job's
    check_input_files(cfg, multirun=number is not None)  # ckpt_path, data files, run_dir: readable


def _check_study(command: str, base: list[str], overrides: list[str]) -> None:
    """An Optuna search resumed or extended searches the space its study was made with (``base``: the sweep's
    fixed overrides, ``overrides``: its whole command line)."""
    cfg = _job_config(command, base, 0)
    sweeper = cfg.hydra.sweeper
    if not str(sweeper.get("_target_", "")).startswith(_OPTUNA_SWEEPER):
        return
    # imported here: Optuna's import (0.35 s) is paid by Optuna searches only, not by every command
    from dllabs.search.space import SearchSpace, check_same_space
    from dllabs.search.study import existing_study, storage_of

    storage = storage_of(sweeper, Path(cfg.hydra.sweep.dir))
    study = existing_study(storage, str(sweeper.study_name))
    if study is None:
        return
    params = OmegaConf.to_container(sweeper.params, resolve=True) if sweeper.params else {}
    task = [o.input_line for o in OverridesParser.create().parse_overrides(overrides)
            if not o.get_key_element().lstrip("+~").startswith("hydra")]  # what Hydra gives the sweeper
    check_same_space(study, SearchSpace.from_overrides([f"{k}={v}" for k, v in params.items()] + task), storage)


def check_command_line(command: str, args: Sequence[str]) -> None:
    """Raise :class:`ConfigError` (one line) when any job of ``args`` (a command line without the script) has a
    bad config. Command lines with flags other than ``-m`` are left to Hydra."""
    if any(arg.startswith("-") and arg not in _HYDRA_FLAGS for arg in args):
        return
    multirun = any(arg in _HYDRA_FLAGS for arg in args)
    overrides = [arg for arg in args if arg not in _HYDRA_FLAGS]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            try:
                jobs = _jobs(command, overrides, multirun)
            except HydraException as err:
                raise _hydra_error(err, command, overrides) from err
            for number, job in enumerate(jobs):
                try:
                    _check_job(command, job, number if multirun else None)
                except HydraException as err:
                    raise _hydra_error(err, command, job) from err
                except ConfigError as err:
                    if len(jobs) > 1:
                        swept = " ".join(o for o in job if o not in overrides) or " ".join(job)
                        raise ConfigError(f"{err} (sweep job {number} of {len(jobs)}: {swept})") from err
                    raise
            if multirun and len(jobs) == 1:  # the basic sweeper's jobs are all checked above
                _check_study(command, jobs[0], overrides)
    finally:
        GlobalHydra.instance().clear()
