"""A config node checked against the signature of the constructor it names (its ``_target_``).

The type, choices and range of every argument are declared once, on the constructor (type hints, ``Literal``,
``Annotated[..., annotated_types constraints]``). :func:`check_arguments` builds a pydantic model from
``inspect.signature`` of the target (a class's ``**kwargs`` followed to its base class), validates the node's
values against it in strict mode (``"3"`` is not an integer: the constructor would get the string), refuses keys the
target does not take, and words the error from the same annotation (:func:`describe`), e.g.
``data.batch_size=-1: must be an integer >= 1``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import math
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types as at
import pydantic
from hydra.utils import get_object
from pydantic import ConfigDict, create_model
from typing_extensions import is_typeddict

from dllabs.errors import ConfigError

_MODEL_CONFIG = ConfigDict(arbitrary_types_allowed=True, extra="forbid", strict=True)


@dataclass(frozen=True)
class Signature:
    """What a target takes: its keyword arguments, their annotations, and the pydantic model over them."""

    name: str
    annotations: dict[str, Any]
    untyped: frozenset[str]  # arguments without a type pydantic can check (the coverage test lists them)
    model: type[pydantic.BaseModel]
    open: bool  # it also takes keywords it does not name (``**kwargs`` passed on to something unknown)


def _own_parameters(function: Any) -> tuple[list[inspect.Parameter], bool]:
    parameters = list(inspect.signature(function).parameters.values())
    takes_more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    return named, takes_more


def _hints(function: Any, owner: type | None = None) -> dict[str, Any]:
    """The resolved annotations of ``function``; one unresolvable name (a type imported only for type checkers,
    as peft's ``TaskType``) leaves only its own argument untyped."""
    with contextlib.suppress(Exception):
        return typing.get_type_hints(function, include_extras=True)
    namespaces = [getattr(function, "__globals__", {})]
    for cls in owner.__mro__ if owner else ():
        if cls.__module__ in sys.modules:
            namespaces.append(vars(sys.modules[cls.__module__]))
    hints = {}
    for name, annotation in getattr(function, "__annotations__", {}).items():
        if not isinstance(annotation, str):
            hints[name] = annotation
            continue
        for namespace in namespaces:
            try:
                hints[name] = eval(annotation, dict(namespace))  # what typing.get_type_hints does
                break
            except Exception:  # noqa: BLE001, S112 - try the next namespace
                continue
    return hints


def _parameters(target: Any) -> tuple[list[tuple[inspect.Parameter, Any]], bool]:
    """(parameter, annotation) of every keyword argument the target names, and whether it takes more (``**kwargs``
    that no base class's ``__init__`` resolves)."""
    if not inspect.isclass(target):
        named, takes_more = _own_parameters(target)
        hints = _hints(target)
        return [(p, hints.get(p.name, inspect.Parameter.empty)) for p in named], takes_more
    found: dict[str, tuple[inspect.Parameter, Any]] = {}
    seen_inits = set()
    for cls in target.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or init in seen_inits or cls is object:
            continue
        seen_inits.add(init)
        named, takes_more = _own_parameters(init)
        hints = _hints(init, target)
        for parameter in named:
            found.setdefault(parameter.name, (parameter, hints.get(parameter.name, inspect.Parameter.empty)))
        if not takes_more:
            return list(found.values()), False
    return list(found.values()), True


@functools.cache
def signature_of(target_name: str) -> Signature | None:
    """The signature of ``target_name``; None when it cannot be imported (a missing optional package is reported
    when the object is built) or has no readable signature."""
    try:
        target = get_object(target_name)
        parameters, takes_more = _parameters(target)
    except Exception:  # noqa: BLE001
        return None
    annotations, untyped, fields = {}, set(), {}
    for parameter, annotation in parameters:
        if annotation is inspect.Parameter.empty or annotation is Any:
            untyped.add(parameter.name)
            annotation = Any
        else:
            try:
                create_model("probe", __config__=_MODEL_CONFIG, value=(annotation, None))
            except Exception:  # noqa: BLE001 - a type pydantic cannot check
                untyped.add(parameter.name)
                annotation = Any
        annotations[parameter.name] = annotation
        fields[parameter.name] = (annotation, None)  # every argument optional here: a node may leave any out
    config = ConfigDict(**{**_MODEL_CONFIG, "extra": "ignore" if takes_more else "forbid"})
    model = create_model(target_name.replace(".", "_"), __config__=config, **fields)
    return Signature(target_name, annotations, frozenset(untyped), model, takes_more)


# ---- words for a type ----------------------------------------------------------------------------------------------
_BOUND_WORDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def shown(value: Any) -> str:
    """A value as a user types it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(item) for item in value) + "]"
    return str(value)


def _is_none(tp: Any) -> bool:
    return tp is None or tp is type(None)


def _constraint_words(metadata: Sequence[Any]) -> list[str]:
    words = []
    for item in metadata:
        if isinstance(item, (at.Interval, at.Ge, at.Gt, at.Le, at.Lt)):
            for name, word in _BOUND_WORDS:
                bound = getattr(item, name, None)
                if bound is not None:
                    words.append(f"{word} {bound:g}" if isinstance(bound, float) else f"{word} {bound}")
        elif isinstance(item, at.Len):
            if item.min_length == item.max_length:
                words.append(f"of {item.min_length} items")
            else:
                words.append(f"of at least {item.min_length} items")
        elif isinstance(item, at.Predicate):
            doc = inspect.getdoc(item.func)
            words.append(doc.splitlines()[0].rstrip(".") if doc else item.func.__name__)
        elif isinstance(item, pydantic.fields.FieldInfo):
            words.extend(_constraint_words(item.metadata))
    return words


def describe(tp: Any) -> str:
    """What a value of type ``tp`` may be, in words: ``an integer >= 1``, ``null or one of relu, swish``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        base, *metadata = args
        words = _constraint_words(metadata)
        if any(isinstance(item, at.Predicate) for item in metadata):
            return " and ".join(words)  # a predicate's own words say all (``6n+2 with n >= 1``)
        text = describe(base)
        return f"{text} {' and '.join(words)}" if words else text
    if origin in (typing.Union, types.UnionType):
        literals = [value for arg in args if typing.get_origin(arg) is Literal for value in typing.get_args(arg)]
        others = [arg for arg in args if typing.get_origin(arg) is not Literal and not _is_none(arg)]
        if literals and bool in others:  # auto | true | false reads as one list of choices
            literals, others = [*literals, True, False], [arg for arg in others if arg is not bool]
        choices = ", ".join(dict.fromkeys(shown(value) for value in literals))  # 16 and "16" read the same
        parts = ([f"one of {choices}"] if literals else []) + [describe(a) for a in others]
        parts = list(dict.fromkeys(parts))
        text = " or ".join(parts)
        return f"null or {text}" if any(_is_none(a) for a in args) else text
    if origin is Literal:
        return "one of " + ", ".join(dict.fromkeys(shown(value) for value in args))
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} " + _plural(describe(args[0]))
        return "a list of " + _plural(describe(args[0])) if args else "a list"
    if origin in (dict, Mapping) or tp in (dict, Mapping) or is_typeddict(tp):
        return "a mapping"
    if _is_none(tp):
        return "null"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}.get(
        tp, f"a {getattr(tp, '__name__', str(tp))}"
    )


def _plural(words: str) -> str:
    for article in ("an ", "a "):
        if words.startswith(article):
            noun, _, rest = words[len(article):].partition(" ")
            return f"{noun}s" + (f" {rest}" if rest else "")
    return words


def unwrap(tp: Any) -> Any | None:
    """``tp`` without ``Annotated`` and ``Optional`` (None for a union of several types)."""
    while True:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is Annotated:
            tp = args[0]
        elif origin in (typing.Union, types.UnionType):
            inner = [a for a in args if not _is_none(a)]
            if len(inner) != 1:
                return None
            tp = inner[0]
        else:
            return tp


def _annotation_at(tp: Any, loc: Sequence[Any]) -> Any | None:
    """The annotation of the part of a value at pydantic's error location ``loc`` (None when not followed)."""
    for step in loc:
        tp = unwrap(tp)
        if is_typeddict(tp):
            tp = typing.get_type_hints(tp, include_extras=True).get(step)
        elif isinstance(step, int) and typing.get_origin(tp) in (list, Sequence) and typing.get_args(tp):
            tp = typing.get_args(tp)[0]
        elif isinstance(step, int) and typing.get_origin(tp) is tuple and typing.get_args(tp):
            args = typing.get_args(tp)
            tp = args[0] if args[-1] is Ellipsis else args[min(step, len(args) - 1)]
        else:
            return None
        if tp is None:
            return None
    return tp


def _value_at(value: Any, loc: Sequence[Any]) -> Any:
    for step in loc:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return value
    return value


def _tuples(value: Any) -> Any:
    """Lists as tuples: Hydra hands a constructor a list where its signature says ``tuple`` (torch's Adam betas)."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    return value


def nearest(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def check_arguments(values: Mapping[str, Any], target_name: str, path: str) -> None:
    """Raise :class:`ConfigError` (one line) when ``values`` (a node's keys, Hydra's own and nested ``_target_``
    nodes left out) do not fit the signature of ``target_name``."""
    signature = signature_of(target_name)
    if signature is None:
        return

    def key_of(name: Any) -> str:
        return f"{path}.{name}" if path else str(name)

    unknown = sorted(set(values) - set(signature.annotations))
    if unknown and not signature.open:
        name = unknown[0]
        takes = ", ".join(sorted(signature.annotations))
        raise ConfigError(
            f"{key_of(name)}={shown(values[name])}: {target_name} takes no argument '{name}'"
            f"{nearest(name, list(signature.annotations))} (it takes {takes})"
        )
    try:
        signature.model.model_validate(dict(values))
        return
    except pydantic.ValidationError as err:
        errors = [e for e in err.errors() if e["type"] != "missing"]
    # a list where the signature says tuple is what Hydra hands over: accept it as the tuple it stands for
    retried = {name: _tuples(values[name]) for name in {e["loc"][0] for e in errors if "tuple" in e["type"]}}
    if retried:
        try:
            signature.model.model_validate({**values, **retried})
            return
        except pydantic.ValidationError as err:
            errors = [e for e in err.errors() if e["type"] != "missing"]
    if not errors:
        return
    first = errors[0]
    name, inner = first["loc"][0], tuple(first["loc"][1:])
    annotation = signature.annotations[name]
    value = values[name]
    if first["type"] == "extra_forbidden" and inner:
        holder = unwrap(_annotation_at(annotation, inner[:-1]))
        takes = sorted(typing.get_type_hints(holder)) if holder is not None and is_typeddict(holder) else []
        where = key_of(".".join(str(step) for step in (name, *inner)))
        raise ConfigError(
            f"{where}={shown(_value_at(value, inner))}: no such setting{nearest(str(inner[-1]), takes)}"
            + (f" (it takes {', '.join(takes)})" if takes else "")
        )
    part = _annotation_at(annotation, inner) if inner else annotation
    if inner and part is not None and isinstance(inner[-1], int):  # an item of a list
        where = ".".join([str(name), *(str(step) for step in inner[:-1])])
        item = describe(part)
        item = item.removeprefix("a number ").removeprefix("an integer ") if item.startswith(("a number ", "an integer ")) else item
        raise ConfigError(f"{key_of(where)}={shown(_value_at(value, inner[:-1]))}: every item must be {item}")
    if inner and part is not None:
        key, value = key_of(".".join([str(name), *(str(step) for step in inner)])), _value_at(value, inner)
    else:
        key, part = key_of(name), annotation
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={shown(value)}: must be a finite number")
    raise ConfigError(f"{key}={shown(value)}: must be {describe(part)}")
