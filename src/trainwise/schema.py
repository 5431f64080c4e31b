"""The configuration schema: every key, its type, default, allowed values or range, and what it means — declared
once, here, beside the field.

``config.py`` composes and validates configs against these dataclasses (OmegaConf structured configs check types and
unknown keys); :func:`field_checks` gives the choice and range checks declared below, which ``config.validate`` runs
before any work starts; ``config_docs.py`` renders ``docs/config.md`` from the same declarations (a test keeps the
two in step). Checks that involve two keys, the registries (model names) or the data live in ``config.validate``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from trainwise.safety import SEED_MAX

Check = tuple[Callable[[Any], bool], str]  # (predicate on the value, "must be …" text for the error)


def opt(default: Any, doc: str, *, choices: tuple[str, ...] | None = None, check: Check | None = None) -> Any:
    """A config field: its default, its documentation (Markdown, rendered into docs/config.md), and optionally the
    values it may take or a range check. Mutable defaults are copied per instance."""
    meta = {"doc": doc, "choices": choices, "check": check}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def at_least(low: float) -> Check:
    return (lambda v: v >= low), f"≥ {low:g}"


def positive() -> Check:
    return (lambda v: v > 0), "> 0"


def within(low: float, high: float, closed: str = "[)") -> Check:
    """``closed``: which ends belong to the range, as in interval notation."""
    lo_ok = (lambda v: v >= low) if closed[0] == "[" else (lambda v: v > low)
    hi_ok = (lambda v: v <= high) if closed[1] == "]" else (lambda v: v < high)
    return (lambda v: lo_ok(v) and hi_ok(v)), f"in {closed[0]}{low:g}, {high:g}{closed[1]}"


def optional(check: Check) -> Check:
    """``check`` on a value that may also be null."""
    pred, text = check
    return (lambda v: v is None or pred(v)), f"{text} (or null)"


@dataclass
class TokenizerConfig:
    """``data.source=text``: the subword tokenizer (Hugging Face ``tokenizers``), trained on the train split only.
    See [text.md](text.md)."""

    kind: str = opt("bpe", "`bpe` (SentencePiece-style, spaces kept as `▁`) or `wordpiece` (BERT-style `##` pieces), "
                    "trained on the **train split only**; ignored when `path` is given", choices=("bpe", "wordpiece"))
    vocab_size: int = opt(8000, "target vocabulary size, the 4 special tokens included", check=at_least(16))
    min_frequency: int = opt(2, "a merge must occur this often in the train split", check=at_least(1))
    lowercase: bool = opt(True, "NFKC-normalise, then lowercase (`false`: NFKC only)")
    path: str | None = opt(None, "an existing `tokenizer.json` (Hugging Face `tokenizers` format) instead of training "
                           "one; it needs a pad token")


@dataclass
class DataConfig:
    """Where the data comes from, how it is split and batched. See [data.md](data.md)."""

    source: str = opt("digits", "`digits`, `breast_cancer`, `wine`, `iris`, `diabetes` (shipped with scikit-learn), "
                      "the synthetic `seq_reverse`, `adding`, `order`, `sine` ([paradigms.md](paradigms.md)), `csv`, "
                      "`npz`, `npy` (memory-mapped `x.npy`/`y.npy`), `images` (an image folder), or `module:function` "
                      "returning `(x, y)`; see [data.md](data.md)")
    path: str | None = opt(None, "file for `csv` / `npz` (`.npz` must hold arrays `x` and `y`); directory for `npy` "
                           "(`x.npy`, `y.npy`, optional `x_val.npy`/`y_val.npy`, `x_test.npy`/`y_test.npy`) and "
                           "`images` (`DIR/<class>/<image>` or `DIR/train|val|test/<class>/…`). Given with a built-in "
                           "`source` (e.g. a preset's), the source is inferred from the path (`.csv`, `.npz`, a "
                           "directory with `x.npy`, a folder of images) or the run is refused — never ignored")
    target: str | None = opt(None, "target column for `csv` and `text`")
    task: str = opt("auto", "`auto` (from the labels), `classification`, `regression`, `multilabel` (y: (N, L) of "
                    "0/1; `text`: a JSON list per `.jsonl` row, or labels joined by `\\|` in a CSV cell)", choices=("auto", "classification", "regression", "multilabel"))
    val_fraction: float = opt(0.1, "of the whole dataset; stratified for classification, deterministic from `seed`",
                              check=within(0, 1))
    test_fraction: float = opt(0.2, "of the whole dataset; stratified for classification, deterministic from `seed`",
                               check=within(0, 1))
    standardize: bool = opt(True, "numeric features (and regression targets) standardised with **train-split "
                            "statistics only**; images use one scalar mean/std")
    batch_size: int = opt(64, "training batch size", check=at_least(1))
    eval_batch_size: int = opt(1024, "batch size for evaluation and prediction", check=at_least(1))
    loader: str = opt("auto", "`auto`/`memory`: in-memory batched indexing (no per-sample `__getitem__`); "
                      "`dataloader`: `torch.utils.data.DataLoader`", choices=("auto", "memory", "dataloader"))
    num_workers: int = opt(0, "DataLoader workers (`>0` selects the DataLoader path)", check=at_least(0))
    pin_memory: bool | None = opt(None, "`null`: on when the device is CUDA")
    persistent_workers: bool | None = opt(None, "`null`: on when `num_workers > 0`")
    prefetch_factor: int | None = opt(None, "`null`: torch's default", check=optional(at_least(1)))
    drop_last: bool = opt(False, "drop the last partial training batch")
    augment: str = opt("none", "`shift`: random ±1-pixel translation of images; `kornia`: kornia's batched crop, "
                       "affine, brightness/contrast and blur on the device. Image inputs (N, C, H, W) only: with "
                       "other inputs both are skipped (so an image preset's setting does not block a CSV run)",
                       choices=("none", "shift", "kornia"))
    holdout_class: int | None = opt(None, "anomaly detection: this class is removed before splitting and all its "
                                    "samples go to the test split, labelled 1")
    classes: list[int] | None = opt(None, "keep only these classes, relabelled 0..k−1 in the given order (e.g. "
                                    "`[5,6,7,8,9]`); class indices (`images`: folders in sorted order)")
    label_fraction: float = opt(1.0, "keep a stratified fraction of the train split (few-label fine-tuning)",
                                check=within(0, 1, "(]"))
    options: dict[str, Any] = opt({}, "arguments of a synthetic source, e.g. `data.options.length=100`")
    image_size: int | None = opt(None, "`images`: resize the shorter side to S and centre-crop S×S; `null`: the "
                                 "first image's size (it must be square)", check=optional(at_least(1)))
    channels: int | None = opt(None, "`images`: `1` (greyscale) or `3` (RGB; RGBA and palette images are "
                               "converted); `null`: from the first image",
                               check=((lambda v: v in (None, 1, 3)), "1 or 3 (or null)"))
    on_bad_file: str = opt("skip", "`images`: `skip` unreadable files (counted, listed in "
                           "`RUN_DIR/data_report.json`, one warning line) or `error` (refuse, naming the file)",
                           choices=("skip", "error"))
    cache_dir: str | None = opt(None, "`images`: where the decoded uint8 cache lives; `null`: "
                                "`$TRAINWISE_CACHE/images`, else `~/.cache/trainwise/images`. `text`: the tokenized "
                                "ids' cache; `null`: `$TRAINWISE_CACHE/text`, else `~/.cache/trainwise/text`")
    text: Any = opt(None, "`text`: the text column (`data.text=review`), or the `[source, target]` columns of text "
                    "pairs (`data.text=[src,tgt]`, with `paradigm.name=seq2seq`); see [text.md](text.md)")
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig,
                                       metadata={"doc": "`text`: the tokenizer (`data.tokenizer.*` below)"})
    max_length: int = opt(128, "`text`: tokens kept per text; longer texts are truncated, and how many and by how "
                          "much is reported (stderr note, `data_report.json`)", check=at_least(2))
    on_bad_row: str = opt("skip", "`text`: a row with an empty text or a missing label is skipped (counted, listed in "
                          "`data_report.json`, one warning line) or refused (`error`, naming the row/line)",
                          choices=("skip", "error"))


@dataclass
class OptimConfig:
    """The optimizer. Weight decay is never applied to biases or normalisation parameters (any parameter with < 2
    dims)."""

    name: str = opt("adamw", "`sgd`, `rmsprop`, `adam` (L2 added to the gradient), `adamw` (decoupled decay)",
                    choices=("sgd", "rmsprop", "adam", "adamw"))
    lr: float = opt(1e-3, "learning rate (the peak of a schedule)", check=positive())
    weight_decay: float = opt(0.01, "on weights only (parameters with ≥ 2 dims)", check=at_least(0))
    momentum: float = opt(0.9, "sgd / rmsprop")
    nesterov: bool = opt(False, "sgd: Nesterov momentum")
    beta1: float = opt(0.9, "adam / adamw")
    beta2: float = opt(0.999, "adam / adamw")
    eps: float = opt(1e-8, "adam / adamw / rmsprop")
    group_lr: dict[str, float] = opt({}, "parameter-name prefix → its own lr, e.g. `optim.group_lr={head: 0.01}`")
    fused: bool | None = opt(None, "adam / adamw: torch's fused kernel (one kernel over all parameters) instead of "
                             "the per-tensor loop; `null`: on for CPU and CUDA tensors, off under FSDP. Same "
                             "algorithm, last-bit differences; ≈ 3.5× faster optimizer step on the digits MLP")


@dataclass
class ScheduleConfig:
    """The learning-rate schedule and the granularity at which it is stepped (table below)."""

    name: str = opt("constant", "`constant`, `step`, `cosine`, `warmup_cosine`, `onecycle`, `plateau`, `cyclic`",
                    choices=("constant", "step", "cosine", "warmup_cosine", "onecycle", "plateau", "cyclic"))
    warmup_fraction: float = opt(0.05, "warmup_cosine: fraction of all optimizer steps spent warming up",
                                 check=within(0, 1))
    min_lr_ratio: float = opt(0.0, "cosine / warmup_cosine: floor as a fraction of the peak lr")
    step_size: int = opt(10, "step: epochs between decays")
    gamma: float = opt(0.1, "step: decay factor")
    factor: float = opt(0.5, "plateau: decay factor")
    patience: int = opt(3, "plateau: epochs without improvement of `train.monitor` before a decay")
    cycle_epochs: int = opt(4, "cyclic: epochs per half-cycle")
    base_lr_ratio: float = opt(0.1, "cyclic: lower bound as a fraction of `optim.lr`")


@dataclass
class TrainConfig:
    """The loop. `trainwise.fit(..., epochs=5)` accepts these keys without the `train.` prefix."""

    epochs: int = opt(20, "passes over the training split", check=at_least(1))
    grad_clip: float | None = opt(1.0, "max global gradient norm (after fp16 unscaling); `null` disables",
                                  check=optional(positive()))
    accumulate: int = opt(1, "micro-batches per optimizer step; each micro-batch loss is weighted by its share of the "
                          "group's samples, so K micro-batches of B give the gradient of one batch of K·B (partial "
                          "last group included)", check=at_least(1))
    label_smoothing: float = opt(0.0, "cross-entropy label smoothing", check=within(0, 1))
    early_stopping: bool = opt(True, "stop after `patience` epochs without improvement of `monitor` (needs a "
                               "validation split)")
    monitor: str = opt("val/loss", "the metric that selects the best weights (restored after training and used for "
                       "the test split) and drives early stopping and the plateau schedule; `val/<metric>` or "
                       "`train/loss`/`train/accuracy`. Checked against the task's metrics before training starts")
    patience: int = opt(10, "epochs without improvement before early stopping", check=at_least(1))
    ema_decay: float | None = opt(None, "keep an exponential moving average of the weights (e.g. 0.999); evaluation "
                                  "uses it", check=optional(within(0, 1, "()")))
    mixup_alpha: float = opt(0.0, "mixup for any classification input (Beta(α, α) mixing weight)",
                             check=at_least(0))
    cutmix_alpha: float = opt(0.0, "cutmix for images", check=at_least(0))
    log_every: int = opt(50, "optimizer steps between train events in `metrics.jsonl` (the only per-interval host "
                         "sync)", check=at_least(1))
    freeze_epochs: int = opt(0, "transfer learning: only the head (last `nn.Linear`) trains for this many epochs, "
                             "then everything", check=at_least(0))


@dataclass
class CheckpointConfig:
    """Transactional, verified checkpoints: a torn one is skipped, never loaded. See the README's guarantees."""

    every_steps: int = opt(0, "checkpoint every N optimizer steps (0: off)", check=at_least(0))
    every_seconds: float = opt(0.0, "checkpoint every T seconds (0: off)", check=at_least(0))
    every_epoch: bool = opt(True, "checkpoint at epoch ends, gated by `epoch_min_seconds` (always at the end of "
                            "training and on SIGINT/SIGTERM)")
    epoch_min_seconds: float = opt(30.0, "epoch-end checkpoints only once this many seconds have passed since the "
                                   "last checkpoint (0: every epoch end). Epochs longer than this checkpoint at every "
                                   "end; shorter ones do not pay for a checkpoint each (on the digits MLP one costs "
                                   "about a third of a 26 ms epoch; 75 MB of state ≈ 0.5 s). A SIGKILL loses at most "
                                   "this much training plus one epoch; the last epoch, stops (early stopping, a "
                                   "callback) and SIGINT/SIGTERM always checkpoint. `best.safetensors` is refreshed "
                                   "together with the checkpoints (they hold the best weights too)",
                                   check=at_least(0))
    keep: int = opt(2, "newest checkpoints kept, plus the best", check=at_least(1))
    on_error: str = opt("continue", "a failed write (disk full, permissions): `continue` (previous checkpoint stays "
                        "valid) or `stop`", choices=("continue", "stop"))


@dataclass
class FaultConfig:
    """What happens when the loss or the gradients stop being finite."""

    nonfinite: str = opt("auto", "`skip`: a step whose loss or gradients are non-finite is not applied (checked per "
                         "step: free on CPU, a sync on GPU); `stop`: stop at the epoch end; `auto`: skip on CPU, "
                         "stop on GPU", choices=("auto", "skip", "stop"))
    max_bad_steps: int = opt(3, "consecutive skipped steps before rolling back to the last checkpoint (before the "
                             "first checkpoint of the run: to its start, kept in memory)", check=at_least(1))
    lr_factor: float = opt(0.5, "lr multiplier at each rollback", check=within(0, 1, "(]"))
    max_rollbacks: int = opt(3, "then stop with `stopped: non_finite_loss`", check=at_least(0))


@dataclass
class DoctorConfig:
    """The doctor's checks during a run. See [doctor.md](doctor.md)."""

    preflight: bool = opt(True, "data, loss-at-init and activation checks before the first step (≈ 1 s)")
    monitor_every: int = opt(50, "optimizer steps between samples of the live monitors (activations, gradients per "
                             "layer); 0 disables them", check=at_least(0))
    diagnose: bool = opt(True, "print the diagnosis and save `diagnosis.json` at the end of training")


PARADIGMS = ("supervised", "autoencoder", "vae", "gan", "contrastive", "seq2seq", "distill")


@dataclass
class ParadigmConfig:
    """How a batch becomes a loss. Everything after the loss (precision, accumulation, clipping, schedule,
    checkpoints, the doctor) is shared by every paradigm. See [paradigms.md](paradigms.md)."""

    name: str = opt("supervised", "`supervised`, `autoencoder`, `vae`, `gan`, `contrastive`, `seq2seq`, `distill`",
                    choices=PARADIGMS)
    temperature: float = opt(0.5, "contrastive: NT-Xent temperature", check=positive())
    kl_weight: float = opt(1.0, "vae: β in recon + β·KL", check=at_least(0))
    d_lr_ratio: float = opt(1.0, "gan: discriminator lr = `optim.lr` × this", check=positive())
    beam_size: int = opt(1, "seq2seq: decoding for the exact-match metric (1 = greedy)", check=at_least(1))
    samples: int = opt(64, "vae / gan: images in `samples.png`", check=at_least(0))


@dataclass
class DistillConfig:
    """`trainwise distill`: student loss α·T²·KL(teacher_T ‖ student_T) + (1−α)·CE."""

    teacher: str | None = opt(None, "teacher run directory (set by `trainwise distill --teacher`)")
    temperature: float = opt(4.0, "softening temperature T", check=positive())
    alpha: float = opt(0.9, "weight of the soft (KL) term; `0` = plain cross-entropy (the no-teacher twin)",
                       check=within(0, 1, "[]"))


@dataclass
class TuneConfig:
    """Hyperparameter search (`trainwise tune`); see [tune.md](tune.md)."""

    space: dict[str, Any] = opt({}, "dotted config keys → distributions, e.g. `{optim: {lr: "
                                "\"loguniform(1e-5, 1e-1)\"}}`; empty: the built-in default space")
    metric: str = opt("auto", "the metric to optimise; `auto`: the run's `train.monitor`")
    direction: str = opt("auto", "`auto` (from the metric's name), `minimize`, `maximize`",
                         choices=("auto", "minimize", "maximize"))
    sampler: str = opt("tpe", "`tpe` or `random`", choices=("tpe", "random"))
    pruner: str = opt("median", "`median`, `hyperband` or `none`", choices=("median", "hyperband", "none"))
    trials: int = opt(20, "trials to run", check=at_least(1))


TRACKING_BACKENDS = ("tensorboard", "mlflow")


@dataclass
class TrackingConfig:
    """Where a run is mirrored besides its own directory (run/tracking.py)."""

    backends: list[str] = opt([], "list of `tensorboard`, `mlflow`; `[]` (the default) for none. Issue 16's rule: "
                              "TensorBoard on by default only if its cost per epoch is within noise. It is a small "
                              "but reproducible cost: 1.028–1.038× of tracking off (medians of three quiet runs on the "
                              "digits MLP) and 0.49–0.57 ms per epoch inside its own calls every time "
                              "([benchmarks/RESULTS.md](../benchmarks/RESULTS.md), \"Tracking backends\"). "
                              "Turn it on with `tracking.backends=[tensorboard]`")
    mlflow_uri: str | None = opt(None, "MLflow tracking URI (`sqlite:///…`, `http://host:5000`, …). `null`: a SQLite "
                                 "store shared by the runs beside this one, `sqlite:///<runs root>/mlflow/mlflow.db`, "
                                 "artifacts in `<runs root>/mlflow/artifacts/`")
    experiment: str = opt("trainwise", "MLflow experiment name (created when missing)")


@dataclass
class Config:
    """A whole run."""

    name: str = opt("run", "run name; the run directory is `runs/<name>-<YYYYmmdd-HHMMSS>`")
    seed: int = opt(0, "seeds the split, model init, data order, dropout, augmentation",
                    check=((lambda v: 0 <= v <= SEED_MAX), f"in 0..{SEED_MAX}"))
    device: str = opt("auto", "`auto` (cuda → mps → cpu), `cpu`, `cuda`, `mps`", choices=("auto", "cpu", "cuda", "mps"))
    precision: str = opt("auto", "`auto` (bf16-mixed on GPUs with native bf16, fp32 elsewhere), `32`, `bf16-mixed`, "
                         "`16-mixed` (GradScaler; skipped steps are counted)",
                         choices=("auto", "32", "bf16-mixed", "16-mixed"))
    compile: bool = opt(False, "wrap the model in `torch.compile` (does not pay on small CPU models)")
    profile: bool = opt(False, "profile a window of training steps with `torch.profiler` (20 optimizer steps after 7 "
                        "skipped) and write the breakdown of step time — data wait, forward (model + loss), backward, "
                        "optimizer (unscale, clipping, `step`, `zero_grad`), epoch end (evaluation, checkpoints) and "
                        "framework overhead — to `RUN_DIR/profile.json` (with a Perfetto/Chrome trace "
                        "`profile-trace.json`) and print it as a table. Off: nothing runs per step. Python: "
                        "`trainwise.fit(..., profile=True)` or `trainwise.train.profile.StepProfiler` around any loop")
    deterministic: bool = opt(False, "deterministic kernels (`torch.use_deterministic_algorithms`, cuDNN autotuning "
                              "off, a fixed cuBLAS workspace); needed for bit-exact resume of some CUDA workloads "
                              "(atomics in ConvTranspose / conv backward / scatter differ run to run otherwise)")
    strategy: str = opt("auto", "under `torchrun` (WORLD_SIZE > 1): `auto`/`ddp` = DistributedDataParallel (gloo on "
                        "CPU, NCCL on CUDA), `fsdp` = FSDP2 `fully_shard`, `none` = refuse to run under a launcher; "
                        "ignored in one process ([distributed.md](distributed.md))",
                        choices=("auto", "ddp", "fsdp", "none"))
    data: DataConfig = field(default_factory=DataConfig)
    # free-form: `name` picks a registered model, every other key is an argument of its builder (checked against the
    # model registry, not this schema)
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


def sections() -> list[tuple[str, type]]:
    """The nested sections of :class:`Config`, in declaration order: ``("data", DataConfig)``, …"""
    return [(f.name, f.default_factory) for f in dataclasses.fields(Config)  # type: ignore[misc]
            if dataclasses.is_dataclass(f.default_factory) and f.default_factory is not dict]


def leaf_fields() -> Iterator[tuple[str, dataclasses.Field[Any]]]:
    """Every documented key as ``("optim.lr", field)``; top-level keys without a prefix."""
    for f in dataclasses.fields(Config):
        if "doc" in f.metadata:
            yield f.name, f
    for section, cls in sections():
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default_factory):  # a nested section (data.tokenizer): its own keys
                for g in dataclasses.fields(f.default_factory):
                    yield f"{section}.{f.name}.{g.name}", g
                continue
            yield f"{section}.{f.name}", f


def choices() -> dict[str, tuple[str, ...]]:
    """``{"optim.name": ("sgd", …), …}``: every key with a fixed set of values."""
    return {key: f.metadata["choices"] for key, f in leaf_fields() if f.metadata.get("choices")}


def field_checks() -> list[tuple[str, Check]]:
    """``[("optim.lr", (predicate, "> 0")), …]``: every key's own range check."""
    return [(key, f.metadata["check"]) for key, f in leaf_fields() if f.metadata.get("check")]
