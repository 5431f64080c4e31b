"""Typed configuration: built-in preset → optional YAML file → ``key=value`` overrides.

The schema is a tree of dataclasses validated by OmegaConf (structured configs), so a wrong type or an unknown key is
caught before any work starts, with the closest valid key suggested. The model section is free-form (its keys are
the chosen builder's arguments) and is validated against the model registry instead.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from trainwise.errors import TrainwiseError, suggest
from trainwise.safety import SEED_MAX, check_finite, load_yaml_bounded


@dataclass
class TokenizerConfig:
    """``data.source=text``: the subword tokenizer (Hugging Face ``tokenizers``), trained on the train split only."""

    kind: str = "bpe"  # bpe | wordpiece (ignored when path is given)
    vocab_size: int = 8000  # target vocabulary size, special tokens included
    min_frequency: int = 2  # a merge / word piece must occur this often in the train split
    lowercase: bool = True  # NFKC-normalise, then lowercase (false: NFKC only)
    path: str | None = None  # an existing tokenizer.json to use instead of training one


@dataclass
class DataConfig:
    source: str = "digits"  # digits|breast_cancer|wine|iris|diabetes|csv|npz|npy|images|module:function
    path: str | None = None  # file for csv / npz sources; DIR for npy (x.npy, y.npy, …); inferred source if built-in
    target: str | None = None  # target column for csv
    task: str = "auto"  # auto|classification|regression|multilabel (y: (N, L) of 0/1)
    val_fraction: float = 0.1  # of the whole dataset
    test_fraction: float = 0.2  # of the whole dataset
    standardize: bool = True  # numeric features standardised with train-split statistics only
    batch_size: int = 64
    eval_batch_size: int = 1024
    loader: str = "auto"  # auto (in-memory when possible) | memory | dataloader
    num_workers: int = 0
    pin_memory: bool | None = None  # None: on when the device is CUDA
    persistent_workers: bool | None = None  # None: on when num_workers > 0
    prefetch_factor: int | None = None  # None: torch's default when num_workers > 0
    drop_last: bool = False
    augment: str = "none"  # none|shift (random ±1 pixel translation for images)|kornia (crop, flip, affine, jitter)
    holdout_class: int | None = None  # autoencoder: this class is left out of train/val and is the test's anomaly
    classes: list[int] | None = None  # keep only these classes (relabelled 0..k-1 in this order), e.g. [5,6,7,8,9]
    label_fraction: float = 1.0  # keep this fraction of the train split (stratified, from the seed): few-label runs
    options: dict[str, Any] = field(default_factory=dict)  # arguments of a synthetic source (length, n, vocab, …)
    image_size: int | None = None  # images: resize shorter side to S, centre-crop S×S (None: first image's size)
    channels: int | None = None  # images: 1 (grey) or 3 (RGB); None: from the first image
    on_bad_file: str = "skip"  # images: skip (listed in RUN_DIR/data_report.json) | error
    cache_dir: str | None = None  # images: decoded cache (None: $TRAINWISE_CACHE/images or ~/.cache/trainwise/images)
    # text: the text column (classification / regression / multilabel), or [source, target] columns (seq2seq)
    text: Any = None
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # text: subword tokenizer
    max_length: int = 128  # text: tokens per text (longer ones are truncated and counted in data_report.json)
    on_bad_row: str = "skip"  # text: an empty text / missing label: skip (counted in data_report.json) | error


@dataclass
class OptimConfig:
    name: str = "adamw"  # sgd|rmsprop|adam|adamw
    lr: float = 1e-3
    weight_decay: float = 0.01  # never applied to biases and normalisation parameters
    momentum: float = 0.9  # sgd / rmsprop
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    group_lr: dict[str, float] = field(default_factory=dict)  # parameter-name prefix -> lr
    # adam/adamw: torch's fused kernel (one kernel over all parameters) instead of the per-tensor foreach loop.
    # null = auto: on for CPU and CUDA (not under FSDP). Same algorithm; measured 3.5× faster optimizer step on the
    # digits MLP here (0.335 → 0.097 ms), results differ from the foreach kernel in the last bits only.
    fused: bool | None = None


@dataclass
class ScheduleConfig:
    name: str = "constant"  # constant|step|cosine|warmup_cosine|onecycle|plateau|cyclic
    warmup_fraction: float = 0.05  # warmup_cosine: fraction of all optimizer steps
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of the peak lr
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor
    factor: float = 0.5  # plateau: decay factor
    patience: int = 3  # plateau: epochs without improvement
    cycle_epochs: int = 4  # cyclic: epochs per half-cycle
    base_lr_ratio: float = 0.1  # cyclic: lower bound as a fraction of lr


@dataclass
class TrainConfig:
    epochs: int = 20
    grad_clip: float | None = 1.0  # max global gradient norm; null disables
    accumulate: int = 1  # micro-batches per optimizer step
    label_smoothing: float = 0.0
    early_stopping: bool = True
    monitor: str = "val/loss"  # metric for early stopping and best weights
    patience: int = 10
    ema_decay: float | None = None  # e.g. 0.999; evaluation then uses the averaged weights
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    log_every: int = 50  # optimizer steps between metrics.jsonl train events (read from device then)
    freeze_epochs: int = 0  # transfer learning: train only the head (last Linear) for this many epochs, then all


@dataclass
class CheckpointConfig:
    every_steps: int = 0  # optimizer steps between checkpoints; 0: off
    every_seconds: float = 0.0  # wall seconds between checkpoints; 0: off
    every_epoch: bool = True  # checkpoints at epoch ends (at most one per epoch_min_seconds)
    # Epoch-end checkpoints only once this many seconds have passed since the last one (0: at every epoch end), so
    # short epochs do not pay a checkpoint each (a 26 ms digits epoch vs ≈ 9 ms per checkpoint; a 75 MB state at
    # ≈ 500 ms per write): a SIGKILL loses at most this much training plus one epoch. Epochs longer than this
    # checkpoint every time. The last epoch, a stop (early stopping, callback) and a signal always checkpoint.
    epoch_min_seconds: float = 30.0
    keep: int = 2  # newest checkpoints kept, plus the best
    on_error: str = "continue"  # a failed checkpoint write: continue | stop


@dataclass
class FaultConfig:
    nonfinite: str = "auto"  # auto (skip on CPU, stop on GPU) | skip | stop
    max_bad_steps: int = 3  # consecutive skipped steps before rolling back to the last checkpoint
    lr_factor: float = 0.5  # lr multiplier applied at each rollback
    max_rollbacks: int = 3  # then stop


@dataclass
class DoctorConfig:
    preflight: bool = True  # data, loss-at-init and activation checks before the first step (~1 s)
    monitor_every: int = 50  # optimizer steps between monitor samples; 0 disables the live monitors
    diagnose: bool = True  # print and save diagnosis.json at the end of training


@dataclass
class ParadigmConfig:
    """How a batch becomes a loss. Everything after the loss (precision, accumulation, clipping, schedule,
    checkpoints, the doctor) is shared by every paradigm."""

    name: str = "supervised"  # supervised|autoencoder|vae|gan|contrastive|seq2seq|distill
    temperature: float = 0.5  # contrastive: NT-Xent temperature
    kl_weight: float = 1.0  # vae: β in recon + β·KL
    d_lr_ratio: float = 1.0  # gan: discriminator lr = optim.lr × this
    beam_size: int = 1  # seq2seq: decoding used for the exact-match metric (1 = greedy)
    samples: int = 64  # vae / gan: samples drawn into the image grid after training


@dataclass
class DistillConfig:
    """``trainwise distill``: student loss α·T²·KL(teacher_T ‖ student_T) + (1−α)·CE."""

    teacher: str | None = None  # the teacher's run directory
    temperature: float = 4.0
    alpha: float = 0.9


@dataclass
class TuneConfig:
    """Hyperparameter search (``trainwise tune``). ``space`` maps dotted config keys to distributions, e.g.
    ``{"optim": {"lr": "loguniform(1e-5, 1e-1)"}}``; empty means the built-in default space."""

    space: dict[str, Any] = field(default_factory=dict)
    metric: str = "auto"  # auto: the run's train.monitor
    direction: str = "auto"  # auto|minimize|maximize (auto: from the metric's name)
    sampler: str = "tpe"  # tpe|random
    pruner: str = "median"  # median|hyperband|none
    trials: int = 20


@dataclass
class TrackingConfig:
    """Where a run is mirrored besides its own directory (``trainwise/run/tracking.py``). Only rank 0 logs; a
    backend that fails is reported once and switched off, never stopping training."""

    # tensorboard: event files in RUN_DIR/tensorboard/; mlflow: params, metrics, tags and artifacts in an MLflow
    # store. TensorBoard is on by default because its measured per-epoch cost is within noise of none
    # (benchmarks/RESULTS.md, "Tracking backends").
    backends: list[str] = field(default_factory=lambda: ["tensorboard"])
    # MLflow tracking URI; null: a SQLite store shared by all runs beside the run directory,
    # sqlite:///<run dir's parent>/mlflow/mlflow.db (runs/mlflow/mlflow.db for the default runs/ root), artifacts in
    # runs/mlflow/artifacts/. Browse with: mlflow ui --backend-store-uri sqlite:///runs/mlflow/mlflow.db
    mlflow_uri: str | None = None
    experiment: str = "trainwise"  # MLflow experiment name (created when missing)


@dataclass
class Config:
    name: str = "run"
    seed: int = 0
    device: str = "auto"  # auto|cpu|cuda|mps
    precision: str = "auto"  # auto|32|bf16-mixed|16-mixed
    compile: bool = False
    # torch.profiler breakdown of a few steps (data, forward, backward, optimizer, overhead) into profile.json;
    # trainwise/train/profile.py. Off: nothing runs per step.
    profile: bool = False
    # Deterministic kernels (torch.use_deterministic_algorithms, cuDNN autotuning off, a fixed cuBLAS workspace). On
    # CUDA, ops that accumulate with atomics (ConvTranspose and conv backward, scatter/index_add) otherwise differ run
    # to run, so bit-exact resume needs this there (measured on an H100: two GAN runs differ without it).
    deterministic: bool = False
    # Multi-process training under torchrun (WORLD_SIZE > 1): auto = DDP; ddp; fsdp (FSDP2 fully_shard); none refuses
    # to run under a multi-process launcher. Ignored in a single process.
    strategy: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "mlp"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    doctor: DoctorConfig = field(default_factory=DoctorConfig)
    paradigm: ParadigmConfig = field(default_factory=ParadigmConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


TRACKING_BACKENDS = ("tensorboard", "mlflow")

CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("auto", "cpu", "cuda", "mps"),
    "precision": ("auto", "32", "bf16-mixed", "16-mixed"),
    "strategy": ("auto", "ddp", "fsdp", "none"),
    "data.task": ("auto", "classification", "regression", "multilabel"),
    "data.loader": ("auto", "memory", "dataloader"),
    "data.on_bad_file": ("skip", "error"),
    "data.on_bad_row": ("skip", "error"),
    "data.tokenizer.kind": ("bpe", "wordpiece"),
    "data.augment": ("none", "shift", "kornia"),
    "paradigm.name": ("supervised", "autoencoder", "vae", "gan", "contrastive", "seq2seq", "distill"),
    "optim.name": ("sgd", "rmsprop", "adam", "adamw"),
    "checkpoint.on_error": ("continue", "stop"),
    "faults.nonfinite": ("auto", "skip", "stop"),
    "tune.direction": ("auto", "minimize", "maximize"),
    "tune.sampler": ("tpe", "random"),
    "tune.pruner": ("median", "hyperband", "none"),
    "schedule.name": ("constant", "step", "cosine", "warmup_cosine", "onecycle", "plateau", "cyclic"),
}


def _all_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k in cfg.keys():
        full = f"{prefix}{k}"
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
        base = OmegaConf.merge(base, {})
        base.model = {}
    try:
        return OmegaConf.merge(base, data)
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
    d, t, o = cfg.data, cfg.train, cfg.optim
    checks = [
        (0.0 <= d.val_fraction < 1.0, "data.val_fraction must be in [0, 1)"),
        (0.0 <= d.test_fraction < 1.0, "data.test_fraction must be in [0, 1)"),
        (d.val_fraction + d.test_fraction < 0.9, "data.val_fraction + data.test_fraction must leave ≥ 10% for training"),
        (d.batch_size >= 1, "data.batch_size must be ≥ 1"),
        (d.eval_batch_size >= 1, "data.eval_batch_size must be ≥ 1"),
        (d.num_workers >= 0, "data.num_workers must be ≥ 0"),
        (t.epochs >= 1, "train.epochs must be ≥ 1"),
        (t.accumulate >= 1, "train.accumulate must be ≥ 1"),
        (t.grad_clip is None or t.grad_clip > 0, "train.grad_clip must be > 0 (or null to disable)"),
        (0.0 <= t.label_smoothing < 1.0, "train.label_smoothing must be in [0, 1)"),
        (t.patience >= 1, "train.patience must be ≥ 1"),
        (t.ema_decay is None or 0.0 < t.ema_decay < 1.0, "train.ema_decay must be in (0, 1) or null"),
        (t.mixup_alpha >= 0 and t.cutmix_alpha >= 0, "train.mixup_alpha / cutmix_alpha must be ≥ 0"),
        (t.log_every >= 1, "train.log_every must be ≥ 1"),
        (o.lr > 0, "optim.lr must be > 0"),
        (o.weight_decay >= 0, "optim.weight_decay must be ≥ 0"),
        (0.0 <= cfg.schedule.warmup_fraction < 1.0, "schedule.warmup_fraction must be in [0, 1)"),
        (0 <= cfg.seed <= SEED_MAX, f"seed={cfg.seed} is out of range: the seed must be in 0..{SEED_MAX}"),
        (cfg.checkpoint.every_steps >= 0, "checkpoint.every_steps must be ≥ 0 (0 disables)"),
        (cfg.checkpoint.every_seconds >= 0, "checkpoint.every_seconds must be ≥ 0 (0 disables)"),
        (cfg.checkpoint.epoch_min_seconds >= 0, "checkpoint.epoch_min_seconds must be ≥ 0 (0: every epoch end)"),
        (cfg.checkpoint.keep >= 1, "checkpoint.keep must be ≥ 1"),
        (cfg.doctor.monitor_every >= 0, "doctor.monitor_every must be ≥ 0 (0 disables)"),
        (cfg.tune.trials >= 1, "tune.trials must be ≥ 1"),
        (0.0 < d.label_fraction <= 1.0, "data.label_fraction must be in (0, 1]"),
        (d.max_length >= 2, f"data.max_length={d.max_length} must be ≥ 2 (tokens kept per text)"),
        (d.tokenizer.vocab_size >= 16, "data.tokenizer.vocab_size must be ≥ 16"),
        (d.tokenizer.min_frequency >= 1, "data.tokenizer.min_frequency must be ≥ 1"),
        (t.freeze_epochs >= 0, "train.freeze_epochs must be ≥ 0"),
        (cfg.paradigm.temperature > 0, "paradigm.temperature must be > 0"),
        (cfg.paradigm.kl_weight >= 0, "paradigm.kl_weight must be ≥ 0"),
        (cfg.paradigm.beam_size >= 1, "paradigm.beam_size must be ≥ 1"),
        (cfg.distill.temperature > 0, "distill.temperature must be > 0"),
        (0.0 <= cfg.distill.alpha <= 1.0, "distill.alpha must be in [0, 1]"),
        (cfg.faults.max_bad_steps >= 1, "faults.max_bad_steps must be ≥ 1"),
        (0 < cfg.faults.lr_factor <= 1, "faults.lr_factor must be in (0, 1]"),
    ]
    for ok, msg in checks:
        if not ok:
            raise TrainwiseError(msg)
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
    if d.image_size is not None and d.image_size < 1:
        raise TrainwiseError("data.image_size must be ≥ 1 (or null: the first image's size)")
    if d.channels is not None and d.channels not in (1, 3):
        raise TrainwiseError("data.channels must be 1 or 3 (or null: from the first image)")
    if d.source == "text":
        _check_text(cfg)
    if d.source == "csv" and not d.target:
        raise TrainwiseError("data.source=csv needs data.target=COLUMN (the column to predict)")


def text_columns(d: DictConfig) -> list[str]:
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


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def from_kwargs(base: DictConfig | None = None, **options: Any) -> DictConfig:
    """Python-API options (``epochs=5``, ``optim={'lr': 1e-3}``, ``**{'optim.lr': 1e-3}``) applied over ``base``
    (default: the schema's defaults), validated like command-line overrides."""
    schema = _schema()
    cfg = schema if base is None else _merge(schema, OmegaConf.to_container(base, resolve=True), schema, "config")
    shortcuts = {f.name for f in dataclasses.fields(TrainConfig)}
    items = []
    for key, value in options.items():
        if key in shortcuts:
            key = f"train.{key}"
        if key == "model" or key.startswith("model."):
            raise TrainwiseError("fit() takes the model itself; model.* options only apply to configs")
        items.append((key, value))
    # One OmegaConf merge of all options: each merge deep-copies the whole config, and benchmarks/bench_loop.py's 9
    # options took 32 ms merged one by one on a fresh schema, 4 ms merged at once on the cached one.
    # It gives the sequential result whenever no option overrides a value another one set; otherwise, and whenever
    # the merge fails, the options are merged one by one, so a bad value is reported naming its own option.
    combined: dict[str, Any] = {}
    if items and all(_merge_into(combined, _nested(key, value)) for key, value in items):
        try:
            cfg = OmegaConf.merge(cfg, combined)
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
