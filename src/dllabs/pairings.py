"""Which model fits which data: the table in ``conf/pairings.yaml``, checked once before a run starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from dllabs.errors import ConfigError

TABLE = "pairings.yaml"


def check_pairing(conf_dir: Path, choices: Mapping[str, str | None] | None = None) -> None:
    """Raise :class:`ConfigError` when the chosen model option cannot take the chosen data option.

    ``choices`` defaults to Hydra's ``runtime.choices`` of the current run. Options the table does not list
    (a user's own config) are not checked.
    """
    if choices is None:
        if not HydraConfig.initialized():
            return
        choices = HydraConfig.get().runtime.choices
    table = OmegaConf.load(Path(conf_dir) / TABLE)
    model, data = choices.get("model"), choices.get("data")
    yields = table.data.get(data) if data else None
    takes = list(table.model.get(model) or []) if model else []
    if yields is None or not takes or yields in takes:
        return
    data_for_model = [name for name, kind in table.data.items() if kind in takes]
    models_for_data = [name for name, kinds in table.model.items() if yields in kinds]
    raise ConfigError(
        f"model={model} does not fit data={data}: model={model} takes {' or '.join(takes)} "
        f"(data={'|'.join(data_for_model)}), data={data} holds {yields} "
        f"(model={'|'.join(models_for_data) or 'none'})"
    )
