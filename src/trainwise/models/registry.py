"""Model registry: small typed builder functions, ``create_model(name, **overrides)``, ``list_models(pattern)``.

Builders take the data-derived arguments ``in_shape`` and ``out_dim`` (filled in by the trainer) plus their own
typed keyword arguments, which are what ``model.<arg>=…`` in a config sets. Models register through explicit imports
in ``trainwise/models/__init__.py`` so a name never goes missing.
"""

from __future__ import annotations

import fnmatch
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from trainwise.errors import TrainwiseError, suggest
from trainwise.safety import check_memory, gb

DATA_ARGS = ("in_shape", "out_dim")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    description: str

    def arguments(self) -> dict[str, tuple[Any, Any]]:
        """User-settable arguments: name -> (type, default)."""
        hints = typing.get_type_hints(self.builder)
        out = {}
        for p in inspect.signature(self.builder).parameters.values():
            if p.name in DATA_ARGS or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            out[p.name] = (hints.get(p.name, Any), p.default)
        return out


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, description: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' registered twice")
        _REGISTRY[name] = ModelSpec(name, fn, description)
        return fn

    return deco


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_spec(name: str) -> ModelSpec:
    if not isinstance(name, str):  # model.name=[-5] from an override or a config file: a list is no name
        raise TrainwiseError(f"model.name={name} is not a model name; run 'trainwise models' to list them")
    if name not in _REGISTRY:
        raise TrainwiseError(f"unknown model '{name}'{suggest(name, _REGISTRY)}; run 'trainwise models' to list them")
    return _REGISTRY[name]


def check_type(name: str, key: str, value: Any, tp: Any) -> Any:
    """``value`` checked against the type hint ``tp`` of model ``name``'s argument ``key`` (ints widen to float)."""
    origin = typing.get_origin(tp)
    options = typing.get_args(tp) if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) else (tp,)
    for opt in options:
        if opt is Any or (opt is type(None) and value is None):
            return value
        base = typing.get_origin(opt) or opt
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base in (list, tuple) and isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(base, type) and isinstance(value, base) and not (base is int and isinstance(value, bool)):
            return value
    raise TrainwiseError(f"model.{key}={value!r} has the wrong type for model '{name}': expected "
                         f"{getattr(tp, '__name__', str(tp)).replace('typing.', '')}")


def create_model(name: str, in_shape: tuple[int, ...] | list[int], out_dim: int, **overrides: Any) -> nn.Module:
    """Build a registered model, checking every override against the builder's signature and types."""
    spec = get_spec(name)
    args = spec.arguments()
    clean = {}
    for key, value in overrides.items():
        if key not in args:
            raise TrainwiseError(f"model '{name}' has no argument '{key}'{suggest(key, args)}; "
                                 f"its arguments are: {', '.join(args) or 'none'}")
        clean[key] = check_type(name, key, value, args[key][0])
    _check_size(spec, tuple(in_shape), out_dim, clean)
    try:
        return spec.builder(in_shape=tuple(in_shape), out_dim=out_dim, **clean)
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as exc:  # e.g. hidden=[-5]: a negative width
        raise TrainwiseError(f"model '{name}' cannot be built with {_shown(clean)}: {str(exc).splitlines()[0][:200]}; "
                             "check the model.* sizes ('trainwise models' lists the arguments)") from None


def _shown(args: dict[str, Any]) -> str:
    return ", ".join(f"model.{k}={v!r}" for k, v in args.items()) or "its default arguments"


def _check_size(spec: ModelSpec, in_shape: tuple[int, ...], out_dim: int, args: dict[str, Any]) -> None:
    """Build the model on the meta device first (shapes only: no memory, no RNG draws) and refuse, with the estimate,
    a model whose weights do not fit in the memory available, before a single byte is allocated."""
    import warnings

    import torch

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # init warnings ("zero-element tensors") would repeat at the real build
            meta = spec.builder(in_shape=in_shape, out_dim=out_dim, **args)
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError, NotImplementedError):
        return  # the real build below reports bad arguments; some builders cannot run on meta tensors at all
    empty = [n for n, t in meta.named_parameters() if t.numel() == 0]
    if empty:  # a zero width (hidden=[0]) builds, then fails deep inside the first forward pass
        raise TrainwiseError(f"model '{spec.name}' with {_shown(args)} has a layer without weights ({empty[0]}: "
                             "a size of 0); every model.* size must be ≥ 1")
    tensors = [*meta.parameters(), *meta.buffers()]
    weights = sum(t.numel() * t.element_size() for t in tensors)
    params = sum(t.numel() for t in meta.parameters())
    # weights, gradients and two Adam moments: what training holds at least, given in the message as the estimate
    check_memory(weights, f"model '{spec.name}' ({params:,} parameters; {_shown(args)}) holds ≈ {gb(weights)} of "
                 f"weights (≈ {gb(4 * weights)} to train with Adam) and so",
                 "make the model smaller (model.* sizes)")
