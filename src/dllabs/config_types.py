"""Constraints that constructors put on their config arguments, named once (``Annotated`` types that the check
before a run reads from the signatures, :mod:`dllabs.signature_check`)."""

from typing import Annotated

from annotated_types import Ge, Gt, Le, Lt

AtLeast1 = Annotated[int, Ge(1)]  # counts: batch size, layers, classes, channels, epochs
AtLeast0 = Annotated[int, Ge(0)]  # workers, warm-up steps, padding index
NonNegative = Annotated[float, Ge(0)]  # noise, penalty strength
Positive = Annotated[float, Gt(0)]  # factors, scales
DropRate = Annotated[float, Ge(0), Lt(1)]  # dropout, label smoothing: in [0, 1)
UnitFraction = Annotated[float, Gt(0), Le(1)]  # a share of something, in (0, 1]
OpenFraction = Annotated[float, Gt(0), Lt(1)]  # strictly between 0 and 1
