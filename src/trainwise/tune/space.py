"""Search spaces: ``tune.space`` distribution strings → typed dimensions, the default space, and validation.

A space maps dotted config keys to strings such as ``loguniform(1e-5, 1e-1)``; it is parsed and checked against the
config schema and the model's arguments before any trial starts, so a typo costs one line, not a study.
Importing this module does not import torch or optuna (validation of model arguments imports the registry lazily).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from trainwise.errors import TrainwiseError, suggest

T = TypeVar("T")

if TYPE_CHECKING:
    import optuna
    from omegaconf import DictConfig

FORMS = ("loguniform(low, high), uniform(low, high), int(low, high), int(low, high, log), "
         "categorical(a, b, ...) (values as YAML, e.g. categorical([128,128], [256,256]))")
_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Dim:
    """One searched config key. ``choices`` hold the decoded config values of a categorical dimension;
    ``when`` = (key, values) makes it conditional: sampled only when that key's sampled value is one of them."""

    key: str
    kind: str  # loguniform | uniform | int | categorical
    text: str  # the distribution as written, for messages and the study's record of its space
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[str, tuple[Any, ...]] | None = None

    def encoded(self) -> tuple[Any, ...]:
        """Choices as Optuna stores them: scalars as themselves, lists/dicts as JSON text (Optuna's categorical
        choices must be None/bool/int/float/str)."""
        return tuple(_encode(c) for c in self.choices)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(self.encoded())
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.kind == "loguniform")

    def suggest(self, trial: optuna.trial.Trial) -> Any:
        """Sample this dimension in ``trial`` and return the config value."""
        if self.kind == "categorical":
            return self.decode(trial.suggest_categorical(self.key, list(self.encoded())))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "loguniform")

    def decode(self, stored: Any) -> Any:
        """Optuna's stored parameter value → the config value."""
        if self.kind == "categorical":
            for choice in self.choices:
                if _same(choice, stored):
                    return choice
        return stored

    def encode_if_contained(self, value: Any) -> tuple[bool, Any]:
        """``(True, stored)`` when a config value lies in this dimension (used to enqueue the baseline trial)."""
        if self.kind == "categorical":
            value = _plain(value)
            for choice in self.choices:
                if _same(choice, value):
                    return True, _encode(choice)
            return False, None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, None
        if self.kind == "int" and (not float(value).is_integer()):
            return False, None
        ok = self.low <= value <= self.high
        return ok, (int(value) if self.kind == "int" else float(value)) if ok else None

    def probe_values(self) -> list[Any]:
        """Values that exercise the whole range, to validate every config the space can produce."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


def _plain(value: Any) -> Any:
    """OmegaConf containers → plain Python (for comparisons with parsed choices)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal as config values, with a stored (JSON text) list equal to the list; True is not 1."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return _encode(a) == _encode(b)


def _encode(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def _coerce(value: Any) -> Any:
    """YAML 1.1 reads ``1e-5`` as a string; read it as the float it obviously is (as config overrides do)."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") and value.lower() not in ("nan", "inf") else value
        except ValueError:
            return value
    if isinstance(value, list):
        return [_coerce(v) for v in value]
    if isinstance(value, dict):
        return {k: _coerce(v) for k, v in value.items()}
    return value


def _bad(key: str, text: Any, why: str) -> TrainwiseError:
    return TrainwiseError(f"tune.space key '{key}' = {text!r}: {why}; valid forms: {FORMS}")


def parse_dim(key: str, text: Any, when: tuple[str, tuple[Any, ...]] | None = None) -> Dim:
    """``"loguniform(1e-5, 1e-1)"`` for ``key`` → a :class:`Dim`; anything else → one-line TrainwiseError."""
    if not isinstance(text, str):
        raise _bad(key, text, "a distribution must be a string")
    m = _CALL.match(text)
    if m is None:
        raise _bad(key, text, "not a distribution")
    kind, inner = m.group(1), m.group(2)
    try:
        args = _coerce(yaml.safe_load(f"[{inner}]"))
    except yaml.YAMLError:
        raise _bad(key, text, "its arguments are not valid YAML values") from None
    if not isinstance(args, list):  # pragma: no cover - "[...]" always loads as a list or fails
        raise _bad(key, text, "its arguments are not a list")
    if kind == "categorical":
        if not args:
            raise _bad(key, text, "categorical() needs at least one value")
        if len({_encode(a) for a in args}) != len(args):
            raise _bad(key, text, "categorical() lists a value twice")
        return Dim(key, kind, text, choices=tuple(args), when=when)
    if kind in ("loguniform", "uniform"):
        nums = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        if len(args) != 2 or len(nums) != 2 or not all(math.isfinite(a) for a in nums):
            raise _bad(key, text, f"{kind}() takes two finite numbers")
        low, high = float(args[0]), float(args[1])
        if not low < high:
            raise _bad(key, text, f"{kind}() needs low < high")
        if kind == "loguniform" and low <= 0:
            raise _bad(key, text, "loguniform() needs 0 < low (use uniform() for ranges that include 0)")
        return Dim(key, kind, text, low=low, high=high, when=when)
    if kind == "int":
        log = len(args) == 3 and args[2] == "log"
        ints = [a for a in args[:2] if isinstance(a, int) and not isinstance(a, bool)]
        if len(args) not in (2, 3) or len(ints) != 2 or (len(args) == 3 and not log):
            raise _bad(key, text, "int() takes two integers and optionally the word log")
        low, high = args[0], args[1]
        if not low < high:
            raise _bad(key, text, "int() needs low < high")
        if log and low < 1:
            raise _bad(key, text, "int(low, high, log) needs 1 <= low")
        return Dim(key, kind, text, low=low, high=high, log=log, when=when)
    raise _bad(key, text, f"unknown distribution '{kind}'")


def flatten(space: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested ``{"optim": {"lr": "..."}}`` and flat ``{"optim.lr": "..."}`` (or a mix) → ``{"optim.lr": "..."}``."""
    out: dict[str, Any] = {}
    for k, v in space.items():
        key = f"{prefix}{k}"
        items = flatten(v, key + ".") if isinstance(v, Mapping) else {key: v}
        for kk, vv in items.items():
            if kk in out:
                raise TrainwiseError(f"tune.space gives '{kk}' twice (once nested, once as a dotted key); keep one")
            out[kk] = vv
    return out


def parse_space(space: Mapping[str, Any]) -> list[Dim]:
    dims = [parse_dim(k, v) for k, v in flatten(space).items()]
    for d in dims:
        if d.key.startswith("tune.") or d.key == "tune":
            raise TrainwiseError(f"tune.space key '{d.key}': the tune section itself cannot be searched")
    return dims


def _g(x: float) -> str:
    """A short exact-enough number for a distribution string (3 significant digits)."""
    return f"{x:.3g}"


def _seed_value(key: str, read: Callable[[], T]) -> T:
    """A config value the default space is centred on; one that is not a number of the right shape (``model.hidden=1``,
    ``model.dropout=abc``: the model would refuse them only when built) is refused here, naming the key."""
    try:
        return read()
    except (TypeError, ValueError) as exc:
        raise TrainwiseError(f"{key} cannot centre the default tune space ({str(exc)[:120]}); fix its value "
                             "('trainwise models' lists the model arguments and their types)") from None


def default_space(cfg: DictConfig) -> list[Dim]:
    """The built-in space, in the usual order of importance, always containing the config's own values (so the
    baseline can be trial 0): learning rate, batch size, model width/depth, weight decay, schedule (+ warmup),
    dropout."""
    specs: list[tuple[str, str, tuple[str, tuple[Any, ...]] | None]] = []
    lr = _seed_value("optim.lr", lambda: float(cfg.optim.lr))
    specs.append(("optim.lr", f"loguniform({_g(lr / 10)}, {_g(lr * 10)})", None))
    sizes = sorted({32, 64, 128, 256, _seed_value("data.batch_size", lambda: int(cfg.data.batch_size))})
    specs.append(("data.batch_size", f"categorical({', '.join(map(str, sizes))})", None))
    from trainwise.models import get_spec  # deferred: imports torch; this module stays torch-free

    args = get_spec(cfg.model.name).arguments()
    model = _plain(cfg.model)
    if not isinstance(model, dict):
        raise TrainwiseError("model must be a section of key: value pairs (model.name, model.hidden, ...)")

    def current(name: str) -> Any:
        return model.get(name, args[name][1])

    if "hidden" in args:
        hidden = _seed_value("model.hidden", lambda: [int(h) for h in current("hidden")])
        width = max(hidden) if hidden else 128
        widths = sorted({max(8, width // 2), width, width * 2})
        depths = sorted({1, 2, 3, len(hidden)} - {0})
        choices = [[w] * d for d in depths for w in widths]
        if hidden not in choices:
            choices.insert(0, hidden)
        specs.append(("model.hidden", f"categorical({', '.join(json.dumps(c) for c in choices)})", None))
    if "width" in args:
        w = _seed_value("model.width", lambda: int(current("width")))
        specs.append(("model.width", f"categorical({', '.join(str(v) for v in sorted({max(4, w // 2), w, w * 2}))})",
                      None))
    if "blocks" in args:
        b = _seed_value("model.blocks", lambda: int(current("blocks")))
        specs.append(("model.blocks", f"int(1, {max(3, b + 1)})", None))
    wd = _seed_value("optim.weight_decay", lambda: float(cfg.optim.weight_decay))
    if wd > 0:
        specs.append(("optim.weight_decay", f"loguniform({_g(min(1e-6, wd))}, {_g(max(0.1, wd))})", None))
    else:  # 0 has no place on a log scale, but the baseline must stay representable
        specs.append(("optim.weight_decay", "categorical(0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)", None))
    schedules = ["constant", "cosine", "warmup_cosine"]
    if cfg.schedule.name not in schedules:
        schedules.append(str(cfg.schedule.name))
    specs.append(("schedule.name", f"categorical({', '.join(schedules)})", None))
    warm = _seed_value("schedule.warmup_fraction", lambda: float(cfg.schedule.warmup_fraction))
    specs.append(("schedule.warmup_fraction", f"uniform(0.0, {_g(max(0.3, warm))})",
                  ("schedule.name", ("warmup_cosine",))))  # the only schedule that reads it
    if "dropout" in args:
        p = _seed_value("model.dropout", lambda: float(current("dropout")))
        specs.append(("model.dropout", f"uniform(0.0, {_g(max(0.5, p))})", None))
    return [parse_dim(k, t, when) for k, t, when in specs]


def format_value(value: Any) -> str:
    """A config value as the right-hand side of a ``key=value`` override that reads back as the same value."""
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10**6).strip()
    return text[:-3].strip() if text.endswith("\n...") or text.endswith("...") else text


def overrides_for(values: Mapping[str, Any]) -> list[str]:
    return [f"{k}={format_value(v)}" for k, v in values.items()]


def validate_space(dims: list[Dim], cfg: DictConfig, compose_with: Any) -> None:
    """Every key must exist and every value the space can produce must pass the config's validation.

    ``compose_with(overrides)`` composes the user's config plus extra overrides (raising TrainwiseError).
    """
    from trainwise.models import get_spec  # deferred: imports torch; this module stays torch-free
    from trainwise.models.registry import check_type

    model_names = {str(cfg.model.name)}
    for d in dims:
        if d.key == "model.name":
            model_names |= {str(c) for c in d.choices}
    for d in dims:
        if d.key.startswith("model.") and d.key != "model.name":
            arg = d.key[len("model."):]
            known: dict[str, Any] = {}
            for name in model_names:
                known.update(get_spec(name).arguments())
            if arg not in known:
                raise TrainwiseError(f"tune.space key '{d.key}': model '{cfg.model.name}' has no argument '{arg}'"
                                     f"{suggest(arg, known)}; its arguments are: {', '.join(known) or 'none'}")
            for v in d.probe_values():
                try:
                    check_type(str(cfg.model.name), arg, v, known[arg][0])
                except TrainwiseError as exc:
                    raise TrainwiseError(f"tune.space key '{d.key}' = {d.text!r}: {exc}") from None
            continue
        for v in d.probe_values():
            try:
                compose_with([f"{d.key}={format_value(v)}"])
            except TrainwiseError as exc:
                raise TrainwiseError(f"tune.space key '{d.key}' = {d.text!r} gives an invalid config: {exc}") from None
