"""Typed configuration: built-in preset → optional YAML file → ``key=value`` overrides.

The schema is a tree of dataclasses validated by OmegaConf (structured configs), so a wrong type or an unknown key is
caught before any work starts, with the closest valid key suggested. The model section is free-form (its keys are
the chosen builder's arguments) and is validated against the model registry instead.
"""

from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any, cast

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from trainwise.errors import TrainwiseError, suggest
from trainwise.safety import check_finite, load_yaml_bounded
from trainwise.schema import (  # noqa: F401 - the section classes are re-exported for callers of trainwise.config
    TRACKING_BACKENDS,
    CheckpointConfig,
    Config,
    DataConfig,
    DistillConfig,
    DoctorConfig,
    FaultConfig,
    OptimConfig,
    ParadigmConfig,
    ScheduleConfig,
    TrackingConfig,
    TrainConfig,
    TuneConfig,
    field_checks,
)
from trainwise.schema import choices as declared_choices

# The schema (every key, type, default, choices, range and doc) is declared in schema.py; re-exported here.
CHOICES: dict[str, tuple[str, ...]] = declared_choices()


def _all_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k in cfg.keys():
        full = f"{prefix}{k!s}"
        keys.append(full)
        v = cfg._get_node(k)  # noqa: SLF001 - OmegaConf has no public "is node a dict" without resolving
        if isinstance(v, DictConfig) and k != "model" and full not in ("tune.space", "data.options"):
            keys.extend(_all_keys(v, full + "."))
    return keys


def _friendly(exc: OmegaConfBaseException, schema: DictConfig, where: str) -> TrainwiseError:
    key = getattr(exc, "full_key", None) or ""
    if isinstance(exc, ConfigKeyError) or "not in struct" in str(exc) or "Key '" in str(exc) and "not" in str(exc):
        return TrainwiseError(f"unknown config key '{key}' in {where}{suggest(key, _all_keys(schema))}")
    if isinstance(exc, ValidationError):
        msg = str(exc).splitlines()[0]
        return TrainwiseError(f"wrong type for '{key}' in {where}: {msg}")
    return TrainwiseError(f"invalid config in {where}: {str(exc).splitlines()[0]}")


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("trainwise.presets").iterdir() if p.name.endswith(".yaml"))


def preset_description(name: str) -> str:
    text = resources.files("trainwise.presets").joinpath(f"{name}.yaml").read_text()
    first = text.splitlines()[0] if text else ""
    return first.lstrip("# ").strip()


def _load_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = load_yaml_bounded(text, where)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise TrainwiseError(f"malformed YAML in {where}{at}: fix the syntax "
                             f"({str(getattr(exc, 'problem', None) or exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrainwiseError(f"{where} must hold a mapping of config keys, not a {type(data).__name__}")
    _no_interpolation(data, where)
    return data


def _no_interpolation(value: Any, where: str) -> None:
    """Refuse OmegaConf interpolations (``${oc.env:SECRET}``, ``${seed}``) in user input: a shared config must not read
    the environment into a run's saved config, and a self-reference would recurse; values are written out plainly."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str) and "${" in v:
            raise TrainwiseError(f"{where} holds '{v[:60]}': interpolations (${{...}}) are not supported in configs; "
                                 "write the value itself")


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise TrainwiseError(f"override '{item}' is not key=value (for example optim.lr=3e-4)")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise TrainwiseError(f"override '{item}' has no key (for example optim.lr=3e-4)")
    if any(not part.strip() for part in key.split(".")):  # "optim..lr": an empty part would blame 'optim'
        raise TrainwiseError(f"override '{item}': key '{key}' has an empty part between dots; write it like optim.lr")
    try:
        value = load_yaml_bounded(raw, f"override '{key}'") if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    _no_interpolation(value, f"override '{item}'")
    # YAML 1.1 reads "3e-4" as a string; accept it as the float it obviously is.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") and value.lower() not in ("none", "null") else value
        except ValueError:
            pass
    return key, value


def _nested(key: str, value: Any) -> dict[str, Any]:
    """``"optim.lr", 3e-4`` → ``{"optim": {"lr": 3e-4}}``."""
    out: dict[str, Any] = {}
    cur = out
    parts = key.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
    return out


def _merge(base: DictConfig, data: dict[str, Any], schema: DictConfig, where: str) -> DictConfig:
    # The model section is replaced wholesale when the name changes: arguments of one model mean nothing to another.
    model = data.get("model")
    if isinstance(model, dict) and "name" in model and model["name"] != base.model.get("name"):
        base = cast(DictConfig, OmegaConf.merge(base, {}))
        base.model = {}
    try:
        return cast(DictConfig, OmegaConf.merge(base, data))
    except OmegaConfBaseException as exc:
        raise _friendly(exc, schema, where) from None
    except TypeError as exc:  # OmegaConf: "Cannot merge incompatible container types" (a list where a dict goes)
        raise TrainwiseError(f"{where}: {exc}; a section that takes key: value pairs was given a list or a "
                             "value (or the other way round)") from None


def compose(config_path: str | Path | None = None, preset: str | None = None,
            overrides: list[str] | None = None) -> DictConfig:
    """Build a validated config: preset (default ``digits-cnn`` when no file is given) → file → overrides."""
    schema = OmegaConf.structured(Config)
    cfg = schema
    if preset is None and config_path is None:
        preset = "digits-cnn"
    if preset is not None:
        if preset not in preset_names():
            raise TrainwiseError(f"unknown preset '{preset}'{suggest(preset, preset_names())}; "
                                 "run 'trainwise presets' to list them")
        text = resources.files("trainwise.presets").joinpath(f"{preset}.yaml").read_text()
        cfg = _merge(cfg, _load_yaml(text, f"preset {preset}"), schema, f"preset {preset}")
    if config_path is not None:
        p = Path(config_path)
        if p.is_dir():
            raise TrainwiseError(f"config '{p}' is a directory; give a YAML file (e.g. {p / 'config.yaml'})")
        if not p.is_file():
            raise TrainwiseError(f"config file '{p}' does not exist (give a YAML file or --preset NAME)")
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise TrainwiseError(f"cannot read config file '{p}': {exc}") from None
        cfg = _merge(cfg, _load_yaml(text, str(p)), schema, str(p))
    parsed = [(item, *_parse_override(item)) for item in overrides or []]
    new_name = [v for _, k, v in parsed if k == "model.name"]
    if new_name and new_name[-1] != cfg.model.get("name"):
        cfg.model = {"name": new_name[-1]}  # another model's arguments mean nothing to this one
    for item, key, value in parsed:
        if key.startswith("model."):
            cfg.model[key[len("model."):]] = value
            continue
        cfg = _merge(cfg, _nested(key, value), schema, f"override '{item}'")
    if cfg.data.path:  # a path given with a built-in dataset (e.g. a preset's): its own source, never ignored
        # deferred: trainwise.data imports torch, and a config error must answer without it (the CLI's fast path)
        from trainwise.data.paths import resolve_source
        from trainwise.data.sources import EMBEDDED
        from trainwise.data.synthetic import SYNTHETIC

        cfg.data.source = resolve_source(cfg.data.source, cfg.data.path, EMBEDDED + tuple(SYNTHETIC))
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Range and choice checks that types alone cannot express."""
    for key, choices in CHOICES.items():
        value = str(OmegaConf.select(cfg, key))
        if value not in choices:
            raise TrainwiseError(f"{key}={value} is not one of {', '.join(choices)}{suggest(value, choices)}")
    _check_all_finite(cfg)
    for key, (ok, text) in field_checks():  # declared beside each field in schema.py
        value = OmegaConf.select(cfg, key)
        if not ok(value):
            raise TrainwiseError(f"{key}={value} is out of range: {key} must be {text}")
    d = cfg.data
    if d.val_fraction + d.test_fraction >= 0.9:
        raise TrainwiseError("data.val_fraction + data.test_fraction must leave ≥ 10% for training")
    for b in cfg.tracking.backends:
        if b not in TRACKING_BACKENDS:
            raise TrainwiseError(f"tracking.backends: '{b}' is not one of {', '.join(TRACKING_BACKENDS)}"
                                 f"{suggest(str(b), TRACKING_BACKENDS)}; use tracking.backends=[] for none")
    if "name" not in cfg.model:
        raise TrainwiseError("model.name is missing; run 'trainwise models' to list the models")
    if cfg.model.name == "python":
        raise TrainwiseError(f"this config records a model object passed to trainwise.fit "
                             f"({cfg.model.get('class', '?')}); it cannot be rebuilt from YAML — set model.name to a "
                             "registered model ('trainwise models') or call trainwise.fit from Python")
    if d.source in ("csv", "npz") and not d.path:
        raise TrainwiseError(f"data.source={d.source} needs data.path=FILE")
    if d.source == "npy" and not d.path:
        raise TrainwiseError("data.source=npy needs data.path=DIR (holding x.npy and y.npy)")
    if d.source == "images" and not d.path:
        raise TrainwiseError("data.source=images needs data.path=DIR (DIR/<class>/<image>)")
    if d.source == "text":
        _check_text(cfg)
    if d.source == "csv" and not d.target:
        raise TrainwiseError("data.source=csv needs data.target=COLUMN (the column to predict)")


def text_columns(d: Any) -> list[str]:
    """``data.text`` as a list: one text column, or the [source, target] columns of pairs."""
    t = d.text
    return [t] if isinstance(t, str) else [str(c) for c in t] if OmegaConf.is_list(t) or isinstance(t, list) else []


def _check_text(cfg: DictConfig) -> None:
    d = cfg.data
    if not d.path:
        raise TrainwiseError("data.source=text needs data.path=FILE (.csv, .tsv or .jsonl)")
    t = d.text
    cols = text_columns(d)
    if not cols or len(cols) > 2 or not all(isinstance(c, str) and c for c in (t if OmegaConf.is_list(t) else [t])):
        raise TrainwiseError(f"data.text={t} must name the text column (data.text=review) or the two columns of text "
                             "pairs (data.text=[source,target], with paradigm.name=seq2seq)")
    if len(cols) == 2 and cfg.paradigm.name != "seq2seq":
        raise TrainwiseError(f"data.text={cols} names text pairs, which need paradigm.name=seq2seq (and "
                             "model.name=seq2seq); for classification name one text column and data.target")
    if len(cols) == 1 and cfg.paradigm.name == "seq2seq":
        raise TrainwiseError("paradigm.name=seq2seq on text needs the [source, target] columns: "
                             f"data.text=[{cols[0]},TARGET_COLUMN]")
    if len(cols) == 1 and not d.target:
        raise TrainwiseError("data.source=text needs data.target=COLUMN (the label or value to predict)")


def _check_all_finite(cfg: DictConfig) -> None:
    """No inf or NaN anywhere (``optim.lr=.inf`` would train to NaN): every number a config holds is finite."""

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{prefix[:-1]}[{i}].")
        else:
            check_finite(node, prefix[:-1])

    walk(OmegaConf.to_container(cfg, resolve=False), "")


def typed(cfg: DictConfig | Config) -> Config:
    """The composed, validated config as the schema's dataclasses (``cfg.model`` a plain dict): what the training
    path reads. Converted once, where ``fit`` starts; attribute access on it costs what any Python object's does."""
    if isinstance(cfg, Config):
        return cfg
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def to_dict(cfg: DictConfig | Config) -> dict[str, Any]:
    if isinstance(cfg, Config):
        return dataclasses.asdict(cfg)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def to_yaml(cfg: DictConfig | Config) -> str:
    """The config as saved in ``RUN_DIR/config.yaml`` (the schema's key order)."""
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)) if isinstance(cfg, Config) else cfg, resolve=True)


def _plain(value: Any) -> Any:
    """NumPy scalars (an lr drawn with numpy, a width from ``np.arange``) as the Python numbers OmegaConf stores;
    lists and dicts of them too. Anything else is passed on unchanged, to be type-checked by the merge."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value


def from_kwargs(base: DictConfig | Config | None = None, **options: Any) -> DictConfig:
    """Python-API options (``epochs=5``, ``optim={'lr': 1e-3}``, ``**{'optim.lr': 1e-3}``) applied over ``base``
    (default: the schema's defaults), validated like command-line overrides."""
    schema = _schema()
    cfg = schema if base is None else _merge(schema, to_dict(base), schema, "config")
    shortcuts = {f.name for f in dataclasses.fields(TrainConfig)}
    items = []
    for key, value in options.items():
        if key in shortcuts:
            key = f"train.{key}"
        if key == "model" or key.startswith("model."):
            raise TrainwiseError("fit() takes the model itself; model.* options only apply to configs")
        items.append((key, _plain(value)))
    # One OmegaConf merge of all options: each merge deep-copies the whole config, and benchmarks/bench_loop.py's 9
    # options took 32 ms merged one by one on a fresh schema, 4 ms merged at once on the cached one.
    # It gives the sequential result whenever no option overrides a value another one set; otherwise, and whenever
    # the merge fails, the options are merged one by one, so a bad value is reported naming its own option.
    combined: dict[str, Any] = {}
    if items and all(_merge_into(combined, _nested(key, value)) for key, value in items):
        try:
            cfg = cast(DictConfig, OmegaConf.merge(cfg, combined))
            items = []
        except Exception:  # noqa: BLE001 - redone option by option below, which raises the precise error
            pass
    for key, value in items:
        cfg = _merge(cfg, _nested(key, value), schema, f"option {key}")
    if cfg is schema:  # no base, no options: the caller gets its own copy (fit() modifies its config)
        cfg = copy.deepcopy(schema)
    validate(cfg)
    return cfg


_SCHEMA: DictConfig | None = None


def _schema() -> DictConfig:
    """The defaults as a structured config, built once per process (``OmegaConf.structured`` costs ≈ 10 ms). Never
    modified: every merge returns a new config."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = OmegaConf.structured(Config)
    return _SCHEMA


def _merge_into(dst: dict[str, Any], src: dict[str, Any]) -> bool:
    """Deep-merge plain dict ``src`` into ``dst`` (copying dicts: the caller's are never modified); False (``dst``
    then unusable) where a value would be replaced, i.e. where one merge could differ from merging one option after
    another."""
    for k, v in src.items():
        if k not in dst:
            if type(v) is dict:
                dst[k] = {}
                _merge_into(dst[k], v)
            else:
                dst[k] = v
        elif type(dst[k]) is dict and type(v) is dict:
            if not _merge_into(dst[k], v):
                return False
        else:
            return False
    return True
