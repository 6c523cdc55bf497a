"""A search space written in Hydra's override syntax, as Optuna distributions.

``hydra.sweeper.params`` and the sweep's command-line overrides are read alike (the command line wins):

- ``interval(a, b)``: a float (or int, when both ends are ints) between a and b; ``tag(log, interval(a, b))`` on
  a log scale;
- ``range(a, b[, step])``: ints (or floats when one of them is a float) from a up to b, b excluded, as Python's
  range and Hydra's basic sweeper read it;
- ``choice(a, b, ...)`` or ``a,b,...``: one of the values;
- anything else is a fixed override given to every trial.

The grid sampler takes every value of ``choice`` and ``range`` (an ``interval`` has no grid).

A study keeps the space it was made with (its ``search_space`` user attribute); a command that resumes or extends it
with another space is refused (:func:`check_same_space`), since its trials would not be comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

from dllabs.errors import ConfigError

SPACE_ATTR = "search_space"  # the study's user attribute: {key: Optuna's JSON of its distribution}


@dataclass
class SearchSpace:
    """The searched keys (as Optuna distributions) and the overrides every trial gets as they are."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_overrides(cls, overrides: list[str]) -> SearchSpace:
        """Later overrides of a key replace earlier ones (``params`` first, then the command line)."""
        space = cls()
        for override in OverridesParser.create().parse_overrides(overrides):
            name = override.get_key_element()
            space.distributions.pop(name, None)
            space.fixed.pop(name, None)
            if override.is_sweep_override():
                space.distributions[name] = distribution_of(override)
            else:
                space.fixed[name] = override.get_value_element_as_str()
        return space

    def grid(self) -> dict[str, list[Any]]:
        """Every value of each searched key, for ``optuna.samplers.GridSampler``."""
        grid = {}
        for name, distribution in self.distributions.items():
            if isinstance(distribution, CategoricalDistribution):
                grid[name] = list(distribution.choices)
            elif distribution.step is not None and not distribution.log:
                count = round((distribution.high - distribution.low) / distribution.step) + 1
                grid[name] = [distribution.low + i * distribution.step for i in range(count)]
            else:
                raise ValueError(
                    f"the grid sampler needs the values of {name}: give choice(...) or range(...), not {distribution}"
                )
        return grid

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """The overrides of one trial: its sampled values, then the fixed overrides."""
        return [f"{name}={value}" for name, value in params.items()] + [
            f"{name}={value}" for name, value in self.fixed.items()
        ]


def distribution_of(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override (``interval``, ``range``, ``choice``, ``a,b``)."""
    value = override.value()
    if override.is_interval_sweep():
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    if override.is_range_sweep() and not value.shuffle:
        start, stop, step = value.start, value.stop, value.step
        if any(isinstance(x, float) for x in (start, stop, step)):
            count = len(list(override.sweep_iterator()))
            return FloatDistribution(float(start), float(start) + (count - 1) * float(step), step=float(step))
        # range(a, b) excludes b: the last value is the largest a + k * step below b
        last = start + (len(range(start, stop, step)) - 1) * step
        return IntDistribution(int(start), int(last), step=int(step))
    choices = list(override.sweep_iterator(transformer=Transformer.encode))
    return CategoricalDistribution(choices)


def stored_space(study: optuna.Study) -> dict[str, str] | None:
    """The space ``study`` was made with (its user attribute; for a study from before it, its first trial's);
    None for a study with no trial yet."""
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is not None:
        return dict(stored)
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return None
    return {name: distribution_to_json(d) for name, d in trials[0].distributions.items()}


def describe(distribution: BaseDistribution) -> str:
    """A distribution in the override syntax that made it."""
    if isinstance(distribution, CategoricalDistribution):
        return f"choice({', '.join(str(c) for c in distribution.choices)})"
    step = distribution.step
    if step is not None and not (isinstance(distribution, IntDistribution) and step == 1 and not distribution.log):
        return f"range({distribution.low}, {distribution.high + step}, {step})"  # the end excluded, as written
    text = f"interval({distribution.low}, {distribution.high})"
    return f"tag(log, {text})" if distribution.log else text


def check_same_space(study: optuna.Study, space: SearchSpace, storage: str) -> None:
    """Raise :class:`ConfigError` when ``study`` already holds trials of another search space."""
    stored = stored_space(study)
    current = {name: distribution_to_json(d) for name, d in space.distributions.items()}
    if stored is None or stored == current:
        return
    changes = []
    for name in sorted(stored.keys() | current.keys()):
        before = describe(json_to_distribution(stored[name])) if name in stored else "not searched"
        now = describe(space.distributions[name]) if name in current else "not searched"
        if before != now or stored.get(name) != current.get(name):
            changes.append(f"{name} was {before}, now {now}")
    raise ConfigError(
        f"study {study.study_name!r} in {storage} was made with another search space ({'; '.join(changes)}); "
        "its trials would not be comparable: search the same space to resume or extend it, or start a new study "
        "(hydra.sweeper.study_name=<new name>)"
    )


def remember_space(study: optuna.Study, space: SearchSpace) -> None:
    """Store the space in a study that has none recorded (a new study), for :func:`check_same_space`."""
    if SPACE_ATTR not in study.user_attrs:
        study.set_user_attr(SPACE_ATTR, {name: distribution_to_json(d) for name, d in space.distributions.items()})
