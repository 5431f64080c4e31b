"""``trainwise bench-infer``: one run's model timed in every inference mode trainwise can produce.

Torch rows take preprocessed tensors (preprocessing is the same host work for all of them and is left out); ONNX
rows take raw inputs because standardisation is inside their graph (a few element-wise ops).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from trainwise.deploy.artifacts import (
    EXPORT_DIR,
    EXPORT_FILES,
    QUANT_DIR,
    eval_inputs,
    open_run,
    ort_forward,
    ort_prepare,
    ort_session,
    quiet_torch,
)
from trainwise.deploy.predict import load_predictor
from trainwise.deploy.quantize import onnx_fp32
from trainwise.deploy.timing import measure
from trainwise.errors import TrainwiseError

ROWS = ("eager", "no_grad", "inference_mode", "compile", "onnxruntime", "int8")
BATCHES = (1, 256)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def _torch_mode(model: torch.nn.Module, mode: str) -> Callable[[torch.Tensor], Any]:
    if mode == "eager":  # eval() but autograd recording: what a forgotten no_grad costs
        return model
    ctx = torch.no_grad if mode == "no_grad" else torch.inference_mode

    def run(x: torch.Tensor) -> Any:
        with ctx():
            return model(x)

    return run


def _compiled(model: torch.nn.Module, inputs: list[torch.Tensor]) -> Callable[[torch.Tensor], Any]:
    compiled = cast(torch.nn.Module, torch.compile(model))  # a Module's compile is a Module; stubs say callable
    run = _torch_mode(compiled, "inference_mode")
    with quiet_torch():
        for x in inputs:  # compile (and recompile per batch size) now, not inside the timing loop
            run(x)
    return run


def bench_infer(run_dir: str | Path, repeats: int = 15, skip: list[str] | tuple[str, ...] = (),
                log: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """One row per mode: median latency at batch 1 (ms) and throughput at batch 256 (samples/s), or why not."""
    if repeats < 1:
        raise TrainwiseError("--repeats must be ≥ 1")
    bad = [s for s in skip if s not in ROWS]
    if bad:
        raise TrainwiseError(f"unknown row '{bad[0]}' for --skip; rows are {', '.join(ROWS)}")
    run = open_run(run_dir)
    raw, _, _, _ = eval_inputs(run, None)
    raws = {b: np.concatenate([raw] * (b // len(raw) + 1))[:b] for b in BATCHES}
    pre = {b: torch.from_numpy(run.prep.apply(x)) for b, x in raws.items()}
    rows: dict[str, dict[str, Any]] = {m: {"mode": m, "status": "skipped (--skip)"} for m in ROWS if m in skip}
    timed: dict[str, Callable[[], Any]] = {}

    def add(mode: str, fn: Callable[[Any], Any], inputs: dict[int, Any], note: str) -> None:
        try:
            for b in BATCHES:
                fn(inputs[b])  # a mode that cannot run fails here, before timing
        except Exception as exc:  # noqa: BLE001 - a failing mode is a row of the table, not a crash
            rows[mode] = {"mode": mode, "status": f"failed: {_first_line(exc)}"}
            return
        rows[mode] = {"mode": mode, "status": "ok", "note": note}
        for b in BATCHES:
            timed[f"{mode}|{b}"] = (lambda f, v: lambda: f(v))(fn, inputs[b])

    model = run.model
    for mode in ("eager", "no_grad", "inference_mode"):
        if mode not in skip:
            add(mode, _torch_mode(model, mode), pre, "")
    if "compile" not in skip:
        log("torch.compile: compiling for batch sizes 1 and 256 (can take a minute) ...")
        try:
            fn = _compiled(model, [pre[b] for b in BATCHES])
            add("compile", fn, pre, "inductor, inference_mode")
        except Exception as exc:  # noqa: BLE001 - no compiler, unsupported op, ...: report it
            rows["compile"] = {"mode": "compile", "status": f"failed: {_first_line(exc)}"}
    with tempfile.TemporaryDirectory() as tmp:
        if "onnxruntime" not in skip:
            path = run.run_dir / EXPORT_DIR / EXPORT_FILES["onnx"]
            note = f"{EXPORT_DIR}/{path.name}"
            try:
                if not path.is_file():
                    path = Path(tmp) / "model.onnx"
                    note = "temporary export"
                    onnx_fp32(run, run.model, path, log)
                add("onnxruntime", ort_forward(ort_session(path)), {b: ort_prepare(run.input_dtype)(x)
                                                                    for b, x in raws.items()}, note)
            except Exception as exc:  # noqa: BLE001
                rows["onnxruntime"] = {"mode": "onnxruntime", "status": f"failed: {_first_line(exc)}"}
        if "int8" not in skip:
            if not (run.run_dir / QUANT_DIR / "quantize.json").is_file():
                rows["int8"] = {"mode": "int8", "status": f"skipped: run 'trainwise quantize {run.run_dir} "
                                                          "--method static' first"}
            else:
                try:
                    p = load_predictor(run, "int8")
                    add("int8", p.forward, {b: p.prepare(x) for b, x in raws.items()}, f"{p.backend} ({Path(p.source).name})")
                except TrainwiseError as exc:
                    rows["int8"] = {"mode": "int8", "status": f"failed: {exc}"}
        log(f"timing {len(timed) // len(BATCHES)} modes at batch sizes 1 and 256 ({repeats} interleaved rounds) ...")
        times = measure(timed, repeats=repeats) if timed else {}
    out = []
    base = times.get("eager|256", {}).get("median_s")
    for mode in ROWS:
        row = rows[mode]
        if row["status"] == "ok":
            t1, t256 = times[f"{mode}|1"], times[f"{mode}|256"]
            row.update({"latency_ms_b1": t1["median_s"] * 1e3, "latency_ms_b1_p25": t1["p25_s"] * 1e3,
                        "latency_ms_b1_p75": t1["p75_s"] * 1e3, "latency_ms_b256": t256["median_s"] * 1e3,
                        "throughput_b256": 256 / t256["median_s"],
                        "speedup_b256_vs_eager": (base / t256["median_s"]) if base else None})
        out.append({"threads": torch.get_num_threads(), "repeats": repeats, **row})
    return out


def render(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"inference: {rows[0]['threads']} thread(s), medians of {rows[0]['repeats']} interleaved "
                  "rounds")
    table.add_column("mode", no_wrap=True)
    table.add_column("b1 latency ms", justify="right")
    table.add_column("b256 samples/s", justify="right")
    table.add_column("vs eager", justify="right")
    table.add_column("note")
    for r in rows:
        if r["status"] != "ok":
            table.add_row(r["mode"], "-", "-", "-", r["status"])
            continue
        speed = f"{r['speedup_b256_vs_eager']:.2f}x" if r.get("speedup_b256_vs_eager") else "-"
        table.add_row(r["mode"], f"{r['latency_ms_b1']:.3f}", f"{r['throughput_b256']:,.0f}", speed, r["note"])
    Console(highlight=False).print(table)
