"""A search space written in Hydra's override syntax, as Optuna distributions.

``hydra.sweeper.params`` and the sweep's command-line overrides are read alike (the command line wins):

- ``interval(a, b)``: a float (or int, when both ends are ints) between a and b; ``tag(log, interval(a, b))`` on
  a log scale;
- ``range(a, b[, step])``: ints (or floats when one of them is a float) from a up to b, b excluded, as Python's
  range and Hydra's basic sweeper read it;
- ``choice(a, b, ...)`` or ``a,b,...``: one of the values;
- anything else is a fixed override given to every trial.

The grid sampler takes every value of ``choice`` and ``range`` (an ``interval`` has no grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution


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
