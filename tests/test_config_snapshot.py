"""Each experiment composes to exactly the config it had when its lab settings were recorded.

The snapshot (tests/snapshots/composed_configs.yaml) holds what `python train.py experiment=X --cfg job` prints
(unresolved, without the hydra node) for every experiment and for the plain default. Moving a value between an
experiment body and a group option must not change it; an intended change to a lab's settings is made by
regenerating the snapshot (DLLABS_UPDATE_SNAPSHOT=1) and saying so in the commit.
"""

from __future__ import annotations

import os

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, ROOT

SNAPSHOT = ROOT / "tests" / "snapshots" / "composed_configs.yaml"
DEFAULT = "(default)"


def composed_job_configs() -> dict[str, dict]:
    """The `--cfg job` config of the default and of every experiment."""
    experiments = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    GlobalHydra.instance().clear()
    out = {}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for name in [DEFAULT, *experiments]:
            cfg = compose("train", overrides=[] if name == DEFAULT else [f"experiment={name}"])
            out[name] = OmegaConf.to_container(cfg, resolve=False)
    return out


def test_composed_configs_match_the_snapshot():
    current = composed_job_configs()
    if os.environ.get("DLLABS_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(yaml.safe_dump(current, sort_keys=True))
    recorded = yaml.safe_load(SNAPSHOT.read_text())
    assert sorted(current) == sorted(recorded), "experiments added or removed: regenerate the snapshot"
    for name in recorded:
        if current[name] != recorded[name]:
            got = yaml.safe_dump(current[name], sort_keys=True).splitlines()
            want = yaml.safe_dump(recorded[name], sort_keys=True).splitlines()
            changed = [line for line in got if line not in want] + [f"(was) {line}" for line in want if line not in got]
            pytest.fail(f"{name}: composed config changed:\n" + "\n".join(changed[:40]))
