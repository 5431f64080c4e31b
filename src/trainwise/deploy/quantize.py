"""``trainwise quantize``: int8 models by dynamic, static (calibrated) or quantization-aware training, on two
backends, keeping whichever is faster on this machine.

Backends:

* ``torch``: eager-mode ``torch.ao.quantization`` with the x86 qconfig. The model is wrapped in
  QuantStub/DeQuantStub, Conv/BN/ReLU and Linear/ReLU neighbours are fused. Eager mode cannot quantize functional
  ops (``a + b`` in a residual block, ``.long()`` before an embedding), so such models fail on this backend: the
  failure is recorded, not hidden.
* ``onnxruntime``: ``onnxruntime.quantization`` on the exported ONNX graph (preprocessing in the graph, like every
  export), per-channel int8 weights; static and QAT calibrate activation ranges with MinMax.

QAT fine-tunes a fake-quantized copy with ``trainwise.fit`` (the run's own optimizer, loss and schedule, for a
few epochs at a lower lr). The torch backend converts that copy; the onnxruntime backend takes its fine-tuned
float weights (folded back into the original module layout), exports them and quantizes them statically.

int8 torch weights are stored as safetensors (integer values, scales and zero points as plain tensors), never as
a pickle, and rebuilt into the same module structure on load.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise.build import load_data
from trainwise.deploy.artifacts import (
    EXPORT_DIR,
    EXPORT_FILES,
    INT8_ONNX,
    INT8_TORCH,
    QUANT_DIR,
    Run,
    WithPreprocess,
    dig,
    eval_inputs,
    ort_forward,
    ort_prepare,
    ort_session,
    quiet_torch,
    read_meta,
    replace_dir,
    require_supervised,
    torch_forward,
    torch_prepare,
    train_inputs,
)
from trainwise.deploy.export import example_batch, export_onnx, root_cause
from trainwise.deploy.timing import measure
from trainwise.errors import TrainwiseError
from trainwise.run.rundir import save_weights, write_json
from trainwise.safety import refuse_existing
from trainwise.train.loop import fit

METHODS = ("dynamic", "static", "qat")
BACKENDS = ("torch", "onnxruntime")
TARGETS = {"size_ratio": 3.5, "speedup_b256": 1.5, "accuracy_drop_points": 0.5}
ENGINE = "x86"  # torch.ao's x86 backend (fbgemm kernels + onednn where faster); qconfigs below match it
ORT_FORMAT = "QOperator"  # measured smaller than QDQ (3.76x vs 3.44x on digits-mlp) at the same speed on CPU
BATCHES = (1, 256)

# Neighbouring children that eager mode can fuse into one quantized kernel (types, in forward order).
_FUSIONS: tuple[tuple[type[nn.Module], ...], ...] = (
    (nn.Conv2d, nn.BatchNorm2d, nn.ReLU), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv2d, nn.ReLU),
    (nn.Conv1d, nn.BatchNorm1d, nn.ReLU), (nn.Conv1d, nn.BatchNorm1d), (nn.Conv1d, nn.ReLU),
    (nn.Linear, nn.ReLU), (nn.BatchNorm2d, nn.ReLU),
)


def cpu_has_vnni() -> bool:
    """int8 dot-product instructions: without them ONNX Runtime's u8s8 kernels can saturate, so reduce_range."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


# ---- torch eager mode --------------------------------------------------------------------------------------------

def fusion_groups(model: nn.Module) -> list[list[str]]:
    """Names of fusable neighbours, found among each module's direct children in registration order (Identity
    placeholders skipped). Registration order is not guaranteed to be forward order, so callers verify the fused
    model against the original before trusting these groups (:func:`verified_groups`)."""
    groups: list[list[str]] = []
    for prefix, parent in model.named_modules():
        kids = [(n, m) for n, m in parent.named_children() if not isinstance(m, nn.Identity)]
        i = 0
        while i < len(kids):
            for pattern in _FUSIONS:
                window = kids[i:i + len(pattern)]
                if len(window) == len(pattern) and all(type(m) is t for (_, m), t in zip(window, pattern)):
                    groups.append([f"{prefix}.{n}" if prefix else n for n, _ in window])
                    i += len(pattern) - 1
                    break
            i += 1
    return groups


def _wrap(model: nn.Module) -> nn.Sequential:
    from torch.ao.quantization import DeQuantStub, QuantStub

    return nn.Sequential(QuantStub(), model, DeQuantStub())


def _fuse(wrapped: nn.Sequential, groups: list[list[str]], qat: bool) -> None:
    from torch.ao.quantization import fuse_modules, fuse_modules_qat

    if groups:
        (fuse_modules_qat if qat else fuse_modules)(wrapped[1], groups, inplace=True)


def verified_groups(model: nn.Module, x: torch.Tensor) -> list[list[str]]:
    """Fusion groups whose eval-mode fusion leaves the float outputs unchanged (else none: fusing modules that are
    not neighbours in forward order would change the model)."""
    groups = fusion_groups(model)
    if not groups:
        return []
    fused = _wrap(copy.deepcopy(model)).eval()
    with quiet_torch(), torch.inference_mode():
        _fuse(fused, groups, qat=False)
        ref, got = model(x), fused(x)
    tol = 1e-3 * (1.0 + float(ref.abs().max()))
    return groups if float((ref - got).abs().max()) <= tol else []


def _set_qconfig(wrapped: nn.Sequential, qconfig: Any) -> None:
    wrapped.qconfig = qconfig
    for m in wrapped.modules():  # embeddings need float-qparams configs; leave them in float
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            m.qconfig = None  # type: ignore[assignment]  # a torch.ao attribute; stubs admit Tensor | Module only


def torch_static(model: nn.Module, groups: list[list[str]], calib: torch.Tensor | None) -> nn.Module:
    """Post-training static int8: fuse, observe activation ranges on ``calib``, convert. With ``calib=None`` the
    structure only (observers at defaults), which :func:`load_torch_int8` fills from saved weights."""
    from torch.ao.quantization import convert, get_default_qconfig, prepare

    torch.backends.quantized.engine = ENGINE
    with quiet_torch():
        wrapped = _wrap(copy.deepcopy(model)).eval()
        _fuse(wrapped, groups, qat=False)
        _set_qconfig(wrapped, get_default_qconfig(ENGINE))
        prepare(wrapped, inplace=True)
        if calib is not None:
            with torch.inference_mode():
                for i in range(0, len(calib), 256):
                    wrapped(calib[i:i + 256])
        convert(wrapped, inplace=True)
    return wrapped


def torch_dynamic(model: nn.Module) -> nn.Module:
    from torch.ao.quantization import quantize_dynamic

    torch.backends.quantized.engine = ENGINE
    with quiet_torch():
        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8)


def qat_finetune(run: Run, splits: Any, groups: list[list[str]], epochs: int, lr: float,
                 log: Callable[[str], None]) -> nn.Sequential:
    """Fine-tune a fake-quantized copy with ``trainwise.fit`` (the run's optimizer, loss and schedule)."""
    from torch.ao.quantization import get_default_qat_qconfig, prepare_qat

    torch.backends.quantized.engine = ENGINE
    with quiet_torch():
        wrapped = _wrap(copy.deepcopy(run.model)).train()
        _fuse(wrapped, groups, qat=True)
        _set_qconfig(wrapped, get_default_qat_qconfig(ENGINE))
        prepare_qat(wrapped, inplace=True)
    log(f"quantization-aware fine-tuning: {epochs} epochs at lr {lr:.3g} ...")
    # No run directory, no doctor, no early stopping: this is a short fine-tune, not a new run.
    options: dict[str, Any] = {"train.epochs": epochs, "optim.lr": lr, "train.early_stopping": False, "doctor.preflight": False,
               "doctor.monitor_every": 0, "doctor.diagnose": False, "compile": False, "device": "cpu",
               "precision": "32", "train.ema_decay": None}
    with quiet_torch():
        fit(wrapped, splits, config=run.cfg, run_dir=None, quiet=True, **options)
    return wrapped.eval()


def torch_convert(prepared: nn.Module) -> nn.Module:
    from torch.ao.quantization import convert

    torch.backends.quantized.engine = ENGINE
    with quiet_torch():
        return convert(copy.deepcopy(prepared).eval(), inplace=False)


def qat_float_model(run: Run, prepared: nn.Sequential, groups: list[list[str]]) -> nn.Module:
    """The original float architecture carrying the QAT-fine-tuned weights: fused QAT modules keep the conv/linear
    parameters under their own name and the batch norm under ``.bn``."""
    model = copy.deepcopy(run.model).eval()
    qat_mods = dict(prepared[1].named_modules())
    float_mods = dict(model.named_modules())
    owner: dict[str, tuple[str, str]] = {}  # float module name → (qat module name, attribute holding its tensors)
    for g in groups:
        owner[g[0]] = (g[0], "")
        for name in g[1:]:
            if isinstance(float_mods[name], nn.modules.batchnorm._BatchNorm):
                owner[name] = (g[0], "bn")
    state = {}
    for key in model.state_dict():
        mod_name, _, attr = key.rpartition(".")
        q_name, sub = owner.get(mod_name, (mod_name, ""))
        src = qat_mods[q_name]
        if sub:
            src = getattr(src, sub)
        state[key] = getattr(src, attr).detach().clone()
    model.load_state_dict(state)
    return model


# ---- int8 torch weights without pickle -------------------------------------------------------------------------

def _flatten_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A quantized state dict as plain tensors + string metadata (what safetensors can hold)."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.is_quantized:
            tensors[f"{key}::int"] = value.int_repr().contiguous()
            meta[f"{key}::dtype"] = str(value.dtype).removeprefix("torch.")
            if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                scales, zps = value.q_per_channel_scales(), value.q_per_channel_zero_points()
                # Lossless narrowing (observers compute float32 scales and small zero points): 8 bytes less per
                # output channel, which is several percent of a small int8 model.
                tensors[f"{key}::scales"] = (scales.float() if torch.equal(scales.float().double(), scales)
                                             else scales).contiguous()
                tensors[f"{key}::zero_points"] = (zps.int() if torch.equal(zps.int().long(), zps)
                                                  else zps).contiguous()
                meta[f"{key}::axis"] = str(value.q_per_channel_axis())
            else:
                meta[f"{key}::scale"] = repr(float(value.q_scale()))
                meta[f"{key}::zero_point"] = str(int(value.q_zero_point()))
        elif isinstance(value, torch.Tensor):
            tensors[key] = value.detach().contiguous()
        elif isinstance(value, (tuple, list)):
            meta[f"{key}::seq"] = str(len(value))
            for i, v in enumerate(value):
                put(f"{key}::{i}", v)
        elif value is None:
            meta[f"{key}::none"] = "1"
        elif isinstance(value, torch.dtype):
            meta[f"{key}::torchdtype"] = str(value).removeprefix("torch.")
        else:
            raise TrainwiseError(f"cannot store '{key}' ({type(value).__name__}) without pickle")

    for k, v in state.items():
        put(k, v)
    # Per-module state-dict versions: quantized modules pick their loading code by version (v1 expects a plain
    # 'weight' key), so they must survive the round trip.
    meta["__state_dict_metadata__"] = json.dumps(getattr(state, "_metadata", {}) or {})
    return tensors, meta


def _unflatten_state(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict[str, Any]:
    def get(key: str) -> Any:
        if f"{key}::none" in meta:
            return None
        if f"{key}::torchdtype" in meta:
            return getattr(torch, meta[f"{key}::torchdtype"])
        if f"{key}::seq" in meta:
            return tuple(get(f"{key}::{i}") for i in range(int(meta[f"{key}::seq"])))
        if f"{key}::int" in tensors:
            ints = tensors[f"{key}::int"]
            if f"{key}::axis" in meta:
                return torch._make_per_channel_quantized_tensor(  # noqa: SLF001 - the public inverse of int_repr
                    ints, tensors[f"{key}::scales"].double(), tensors[f"{key}::zero_points"].long(),
                    int(meta[f"{key}::axis"]))
            # the quantized dtype follows from the integer one (uint8 → quint8, int8 → qint8, int32 → qint32)
            return torch._make_per_tensor_quantized_tensor(  # noqa: SLF001
                ints, float(meta[f"{key}::scale"]), int(meta[f"{key}::zero_point"]))
        return tensors[key]

    from collections import OrderedDict

    roots = {k.split("::")[0] for k in [*tensors, *meta] if k != "__state_dict_metadata__"}
    state: OrderedDict[str, Any] = OrderedDict((k, get(k)) for k in sorted(roots))
    state._metadata = OrderedDict(json.loads(meta.get("__state_dict_metadata__", "{}")))  # type: ignore[attr-defined]
    return state


def save_torch_int8(module: nn.Module, path: Path) -> int:
    from safetensors.torch import save_file

    tensors, meta = _flatten_state(module.state_dict())
    save_file(tensors, str(path), metadata=meta)
    path.chmod(0o644)
    return path.stat().st_size


def load_torch_int8(run: Run, meta: dict[str, Any], path: Path) -> nn.Module:
    """Rebuild the quantized module structure recorded in quantize.json and load its int8 weights."""
    from safetensors import safe_open

    if not path.is_file():
        raise TrainwiseError(f"'{path}' is missing; run 'trainwise quantize {run.run_dir} --force' again")
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        smeta = f.metadata() or {}
    groups = dig(meta, "torch", "fusion_groups") or []
    if meta.get("method") not in METHODS or not isinstance(groups, list) or \
            not all(isinstance(g, list) and all(isinstance(n, str) for n in g) for g in groups):
        raise TrainwiseError(f"'{path.parent / 'quantize.json'}' is damaged (method or fusion groups); run 'trainwise "
                             f"quantize {run.run_dir} --force' again")
    module = torch_dynamic(run.model) if meta["method"] == "dynamic" else torch_static(run.model, groups, None)
    with quiet_torch():
        module.load_state_dict(_unflatten_state(tensors, smeta))
    return module.eval()


# ---- onnxruntime ------------------------------------------------------------------------------------------------

def onnx_fp32(run: Run, model: nn.Module, dest: Path, log: Callable[[str], None]) -> None:
    raw, _, _, _ = eval_inputs(run, 2)
    log("exporting an fp32 ONNX graph for onnxruntime ...")
    export_onnx(WithPreprocess(model, run.prep).eval(), example_batch(raw), dest)


def _preprocessed(src: Path, dest: Path) -> Path:
    """ORT's recommended pre-pass (shape inference + graph cleanup); the original graph when it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with quiet_torch():
            quant_pre_process(str(src), str(dest))
        return dest
    except Exception:  # noqa: BLE001 - the pre-pass is an optimisation; quantization works without it
        return src


def ort_quantize(src: Path, dest: Path, method: str, calib: np.ndarray | None, reduce_range: bool) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    pre = _preprocessed(src, dest.with_name(dest.stem + ".pre.onnx"))
    if method == "dynamic":
        quantize_dynamic(str(pre), str(dest), per_channel=True, reduce_range=reduce_range,
                         weight_type=QuantType.QInt8)
        return
    assert calib is not None
    feed: np.ndarray = calib  # the narrowed type, for the class below (narrowing does not reach nested scopes)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": feed[i:i + 64]} for i in range(0, len(feed), 64)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(str(pre), str(dest), Reader(), quant_format=getattr(QuantFormat, ORT_FORMAT), per_channel=True,
                    reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


# ---- measurement and the command -------------------------------------------------------------------------------

def _quality(outputs: np.ndarray, y: torch.Tensor, prep: Any) -> float:
    """Test accuracy in percent (classification) or RMSE in target units (regression)."""
    if prep.task == "classification":
        return float((outputs.argmax(1) == y.numpy()).mean() * 100)
    pred = outputs[:, 0] * prep.y_std + prep.y_mean
    true = y.numpy() * prep.y_std + prep.y_mean
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def _err(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "QuantizedCPU" in text:  # eager mode met a functional op (a + b, cat, .long()) on an int8 tensor
        op = text.split("'")[1] if "'" in text else "an operator"
        return (f"eager-mode quantization cannot run {op} on int8 tensors (a functional op such as a residual '+' "
                "needs FloatFunctional in the model's code)")
    return text[:300] if isinstance(exc, TrainwiseError) else f"{type(exc).__name__}: {text[:300]}"


def quantize_run(run: Run, method: str, backend: str = "auto", force: bool = False, epochs: int = 3,
                 lr: float | None = None, calibration: int = 512, repeats: int = 15,
                 log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Quantize, measure both backends, keep the best, write ``RUN_DIR/quantized/``; returns quantize.json."""
    if method not in METHODS:
        raise TrainwiseError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    if backend not in ("auto", *BACKENDS):
        raise TrainwiseError(f"unknown backend '{backend}'; choose auto, torch or onnxruntime")
    if calibration < 1 or repeats < 1 or epochs < 1:
        raise TrainwiseError("--calibration-samples, --repeats and --epochs must be ≥ 1")
    require_supervised(run, "quantize")
    out_dir = run.run_dir / QUANT_DIR
    refuse_existing(out_dir, force, "quantized output", folder=True)
    backends = BACKENDS if backend == "auto" else (backend,)
    seed = int(run.cfg.seed)
    splits = load_data(run.cfg)
    raw_test, _, y_test, split = eval_inputs(run, None, splits)
    calib_raw = train_inputs(run, calibration, seed, splits)
    calib_pre = torch.from_numpy(run.prep.apply(calib_raw))
    reduce_range = not cpu_has_vnni()
    groups = verified_groups(run.model, calib_pre[:64])
    lr = float(lr if lr is not None else run.cfg.optim.lr / 10)

    tmp_root = Path(tempfile.mkdtemp(dir=run.run_dir, prefix=".quantized-"))
    try:
        work = tmp_root / "work"
        work.mkdir()
        result_dir = tmp_root / "out"
        result_dir.mkdir()
        fp32_onnx = run.run_dir / EXPORT_DIR / EXPORT_FILES["onnx"]
        onnx_error = ""
        meta_path = run.run_dir / EXPORT_DIR / "export.json"
        exported_ok = fp32_onnx.is_file() and meta_path.is_file() and \
            dig(read_meta(meta_path), "artifacts", "onnx", "parity", "passed") is True
        if not exported_ok and "onnxruntime" in backends:  # no export, or one that failed parity: a fresh graph
            fp32_onnx = work / "fp32.onnx"
            try:
                onnx_fp32(run, run.model, fp32_onnx, log)
            except Exception as exc:  # noqa: BLE001 - recorded as the onnxruntime candidate's failure below
                onnx_error = f"the model cannot be exported to ONNX ({root_cause(exc)})"

        prepared = None
        if method == "qat":
            if run.prep.kind == "tokens":
                raise TrainwiseError("qat needs float inputs for its QuantStub; this model takes integer token ids "
                                     "(use --method dynamic or static)")
            try:
                prepared = qat_finetune(run, splits, groups, epochs, lr, log)
            except TrainwiseError:
                raise
            except Exception as exc:  # eager-mode QAT cannot wrap every model; say which and why
                raise TrainwiseError(f"quantization-aware training of model '{run.model_name}' failed: "
                                     f"{_err(exc)}") from None

        cands: dict[str, dict[str, Any]] = {}
        natives: dict[str, tuple[Callable[[Any], Any], Callable[[np.ndarray], Any]]] = {}
        # fp32 references: the eager model and, when available, the same graph in onnxruntime
        natives["fp32 torch"] = (torch_forward(run.model), torch_prepare(run.prep))
        if fp32_onnx.is_file() and not onnx_error:
            sess = ort_session(fp32_onnx)
            natives["fp32 onnxruntime"] = (ort_forward(sess), ort_prepare(run.input_dtype))

        if "torch" in backends:
            log(f"torch.ao eager {method} int8 ({ENGINE}) ...")
            t0 = time.perf_counter()
            try:
                if method != "dynamic" and run.prep.kind == "tokens":
                    raise TrainwiseError("static int8 needs float inputs for its QuantStub; this model takes "
                                         "integer token ids")
                if method == "dynamic":
                    qmodel = torch_dynamic(run.model)
                elif method == "static":
                    qmodel = torch_static(run.model, groups, calib_pre)
                else:
                    qmodel = torch_convert(prepared)  # type: ignore[arg-type]
                fwd = torch_forward(qmodel)
                fwd(calib_pre[:2])  # eager mode fails at run time on unquantizable ops: find out now
                path = result_dir / INT8_TORCH
                int8_bytes = save_torch_int8(qmodel, path)
                fp32_bytes = _safetensors_bytes(run.model, work / "fp32.safetensors")
                cands["torch"] = {"artifact": INT8_TORCH, "bytes": int8_bytes, "fp32_bytes": fp32_bytes,
                                  "engine": ENGINE, "fusion_groups": groups, "seconds": time.perf_counter() - t0}
                natives["int8 torch"] = (fwd, torch_prepare(run.prep))
            except Exception as exc:  # noqa: BLE001 - a backend that cannot handle the model is a result
                cands["torch"] = {"error": _err(exc)}
                (result_dir / INT8_TORCH).unlink(missing_ok=True)
        if "onnxruntime" in backends:
            log(f"onnxruntime {method} int8 ({ORT_FORMAT}, reduce_range={reduce_range}) ...")
            t0 = time.perf_counter()
            try:
                if onnx_error:
                    raise TrainwiseError(onnx_error)
                src = fp32_onnx
                if method == "qat":  # the fine-tuned weights, in the original layout, as a fresh fp32 graph
                    src = work / "qat-fp32.onnx"
                    onnx_fp32(run, qat_float_model(run, prepared, groups), src, log)  # type: ignore[arg-type]
                dest = result_dir / INT8_ONNX
                with quiet_torch():
                    ort_quantize(src, dest, "dynamic" if method == "dynamic" else "static", calib_raw, reduce_range)
                for extra in result_dir.glob("*.pre.onnx"):
                    extra.unlink()
                dest.chmod(0o644)
                sess8 = ort_session(dest)
                cands["onnxruntime"] = {"artifact": INT8_ONNX, "bytes": dest.stat().st_size,
                                        "fp32_bytes": fp32_onnx.stat().st_size, "format": ORT_FORMAT,
                                        "reduce_range": reduce_range, "seconds": time.perf_counter() - t0}
                natives["int8 onnxruntime"] = (ort_forward(sess8), ort_prepare(run.input_dtype))
            except Exception as exc:  # noqa: BLE001
                cands["onnxruntime"] = {"error": _err(exc)}
                (result_dir / INT8_ONNX).unlink(missing_ok=True)
        ok = [b for b in cands if "error" not in cands[b]]
        if not ok:
            reasons = "; ".join(f"{b}: {c['error']}" for b, c in cands.items())
            raise TrainwiseError(f"model '{run.model_name}' cannot be quantized ({method}) on any backend: {reasons}")

        log(f"accuracy on the {split} split ...")
        quality = {}
        for name, (fwd, prepare) in natives.items():
            outs = np.concatenate([fwd(prepare(raw_test[i:i + 1024])) for i in range(0, len(raw_test), 1024)])
            quality[name] = _quality(outs, y_test, run.prep)
        log(f"timing {len(natives)} variants at batch sizes 1 and 256 ({repeats} interleaved rounds) ...")
        timed: dict[str, Callable[[], Any]] = {}
        for b in BATCHES:
            xb = np.concatenate([raw_test] * (b // len(raw_test) + 1))[:b]
            for name, (fwd, prepare) in natives.items():
                native = prepare(xb)
                timed[f"{name}|{b}"] = (lambda f, v: lambda: f(v))(fwd, native)
        times = measure(timed, repeats=repeats)
        lat = {k: v["median_s"] * 1e3 for k, v in times.items()}

        main = "accuracy" if run.prep.task == "classification" else "rmse"
        fp32_q = quality["fp32 torch"]
        fp32_names = [n for n in natives if n.startswith("fp32")]
        for b_name in ok:
            c = cands[b_name]
            key = f"int8 {b_name}"
            c["latency_ms"] = {str(b): lat[f"{key}|{b}"] for b in BATCHES}
            c[main] = quality[key]
            c["accuracy_drop_points" if main == "accuracy" else "rmse_increase"] = \
                (fp32_q - quality[key]) if main == "accuracy" else (quality[key] - fp32_q)
            c["size_ratio"] = c["fp32_bytes"] / c["bytes"]
        within = [b for b in ok if main != "accuracy" or cands[b]["accuracy_drop_points"] <= TARGETS[
            "accuracy_drop_points"]]
        pool = within or ok
        winner = min(pool, key=lambda b: cands[b]["latency_ms"]["256"])
        w = cands[winner]
        fp32_lat = {str(b): {n.removeprefix("fp32 "): lat[f"{n}|{b}"] for n in fp32_names} for b in BATCHES}
        best_fp32 = {b: min(v.values()) for b, v in fp32_lat.items()}
        speed = {b: best_fp32[b] / w["latency_ms"][b] for b in best_fp32}
        speed_eager = {str(b): lat[f"fp32 torch|{b}"] / w["latency_ms"][str(b)] for b in BATCHES}
        targets = {
            "size_ratio": {"target": f">= {TARGETS['size_ratio']}", "value": w["size_ratio"],
                           "met": w["size_ratio"] >= TARGETS["size_ratio"]},
            "speedup_b256": {"target": f">= {TARGETS['speedup_b256']} vs the fastest fp32 runtime",
                             "value": speed["256"], "met": speed["256"] >= TARGETS["speedup_b256"]},
        }
        if main == "accuracy":
            targets["accuracy_drop_points"] = {"target": f"<= {TARGETS['accuracy_drop_points']}",
                                               "value": w["accuracy_drop_points"],
                                               "met": w["accuracy_drop_points"] <= TARGETS["accuracy_drop_points"]}
        result = {
            "method": method, "backend": winner, "artifact": w["artifact"], "model": run.model_name,
            "selection": "fastest at batch 256 among backends within the accuracy bound"
                         if backend == "auto" else f"--backend {backend}",
            "threads": torch.get_num_threads(), "cpu_int8_dot_product": not reduce_range,
            "split": split, "samples": len(raw_test), "calibration_samples": len(calib_raw),
            "fp32_onnx": (f"{EXPORT_DIR}/{EXPORT_FILES['onnx']}" if exported_ok else "temporary export")
            if "fp32 onnxruntime" in natives else None,
            "qat": {"epochs": epochs, "lr": lr} if method == "qat" else None,
            "fp32": {main: fp32_q, "latency_ms": fp32_lat,
                     **({"onnxruntime_" + main: quality["fp32 onnxruntime"]} if "fp32 onnxruntime" in quality
                        else {})},
            "int8": {main: w[main], "latency_ms": w["latency_ms"], "bytes": w["bytes"], "fp32_bytes": w["fp32_bytes"]},
            "size_ratio": w["size_ratio"],
            "speedup_vs_fastest_fp32": speed, "speedup_vs_eager_fp32": speed_eager,
            "targets": targets, "candidates": cands, "timing": {"repeats": repeats, "statistic": "median"},
        }
        if "torch" in cands and "error" not in cands["torch"]:
            result["torch"] = {"fusion_groups": groups, "engine": ENGINE}
        for b_name in ok:  # only the winner's artefact ships
            if b_name != winner:
                (result_dir / cands[b_name]["artifact"]).unlink(missing_ok=True)
        write_json(result_dir / "quantize.json", result)
        if out_dir.exists() and not force:  # re-checked: another process may have written it meanwhile
            raise TrainwiseError(f"'{out_dir}' already exists; pass --force to replace it")
        replace_dir(result_dir, out_dir)
        return result
    finally:
        import shutil

        shutil.rmtree(tmp_root, ignore_errors=True)


def _safetensors_bytes(model: nn.Module, path: Path) -> int:
    save_weights(path, model.state_dict())
    return path.stat().st_size


def render(r: dict[str, Any]) -> str:
    """The human summary: what won, the measurements, and each target MET / NOT MET."""
    main = "accuracy" if "accuracy" in r["fp32"] else "rmse"
    lines = [f"quantized {r['model']} ({r['method']}) with {r['backend']} → {QUANT_DIR}/{r['artifact']}"]
    for name, c in r["candidates"].items():
        if "error" in c:
            lines.append(f"  {name:<12} failed: {c['error']}")
            continue
        lines.append(f"  {name:<12} {main} {c[main]:.2f}  size {c['bytes'] / 1024:.0f} KB ({c['size_ratio']:.2f}x "
                     f"smaller)  latency b1 {c['latency_ms']['1']:.3f} ms, b256 {c['latency_ms']['256']:.3f} ms")
    for b, v in r["fp32"]["latency_ms"].items():
        lines.append(f"  fp32 b{b:<4}    " + ", ".join(f"{k} {ms:.3f} ms" for k, ms in v.items()))
    lines.append(f"  speedup vs fastest fp32: b1 {r['speedup_vs_fastest_fp32']['1']:.2f}x, b256 "
                 f"{r['speedup_vs_fastest_fp32']['256']:.2f}x (vs eager torch: b1 "
                 f"{r['speedup_vs_eager_fp32']['1']:.2f}x, b256 {r['speedup_vs_eager_fp32']['256']:.2f}x)")
    lines.append(f"  {main}: fp32 {r['fp32'][main]:.2f} → int8 {r['int8'][main]:.2f} on {r['samples']} {r['split']} "
                 "samples")
    for name, t in r["targets"].items():
        lines.append(f"  target {name} {t['target']}: {t['value']:.2f} {'MET' if t['met'] else 'NOT MET'}")
    if r["method"] == "dynamic" and r["size_ratio"] < 2:
        lines.append("  hint: dynamic quantization covers Linear/LSTM/GRU weights only (and onnxruntime's dynamic "
                     "convolutions are slow); for convolutional models use --method static")
    return "\n".join(lines)

