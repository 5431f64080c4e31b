"""CLI commands for shipping a run (export, quantize, serve, bench-infer); torch is imported inside commands
(every import inside a function here is deferred on purpose), so ``trainwise --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import sys

from trainwise.errors import TrainwiseError

EPILOG_EXPORT = """\
examples:
  trainwise export runs/digits-mlp-20261126-120000                 # export/model.onnx + export/export.json
  trainwise export runs/digits-cnn-20261126-120000 --format torch-export
  trainwise export RUN_DIR --format torchscript --force           # replace an earlier TorchScript export

The artefact takes raw features: the run's standardisation (and median imputation for tabular data) is part of
the graph; export.json records it too, with the class names, the input shape (dynamic batch dimension) and the
parity check. Exit status 1 when the artefact's outputs differ from the eager model's by more than --tolerance.
"""

EPILOG_QUANTIZE = """\
examples:
  trainwise quantize RUN_DIR --method static          # calibrated post-training int8
  trainwise quantize RUN_DIR --method dynamic         # int8 weights, activations quantized on the fly
  trainwise quantize RUN_DIR --method qat --epochs 3  # fine-tune under fake quantization, then int8
  trainwise quantize RUN_DIR --method static --backend onnxruntime --json

Both backends are measured (eager torch.ao with the x86 qconfig, ONNX Runtime int8 on the exported graph) and
the faster one at batch 256 among those within the accuracy bound is kept. quantized/quantize.json holds every
measurement; the targets (size ≥3.5× smaller, ≥1.5× faster at batch 256 than the fastest fp32 runtime, accuracy
drop ≤0.5 points) are printed MET / NOT MET.
"""

EPILOG_SERVE = """\
examples:
  trainwise serve RUN_DIR                              # http://127.0.0.1:8000
  trainwise serve RUN_DIR --port 9000 --format onnx
  curl -s localhost:8000/health
  curl -s -X POST localhost:8000/predict -H 'content-type: application/json' -d '{"inputs": [[0, 1, ...]]}'

POST /predict takes {"inputs": [[raw features...], ...]} (one row per sample, flat or in the input shape; the
run's preprocessing is applied) and answers {"predictions": [...], "probabilities": [[...], ...]}
(probabilities is null for regression). Bad payloads get a 4xx answer with a message.
"""

EPILOG_BENCH = """\
examples:
  trainwise bench-infer RUN_DIR
  trainwise bench-infer RUN_DIR --json --repeats 20
  trainwise bench-infer RUN_DIR --skip compile

Rows: eager (eval, autograd on), no_grad, inference_mode, torch.compile, ONNX Runtime (export/model.onnx, or
a temporary export), int8 (quantized/, when 'trainwise quantize' has run). Each is timed in interleaved rounds;
the table shows medians: latency at batch 1 and throughput at batch 256.
"""


def _threads(value: int | None) -> int | None:
    if value is None:
        return None
    if value < 1:  # torch.set_num_threads(0) raises deep inside torch
        raise TrainwiseError(f"--threads {value} must be ≥ 1 (or left out for torch's default)")
    import torch

    torch.set_num_threads(value)
    return value


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")


def cmd_export(args: argparse.Namespace) -> int:
    from trainwise.deploy.artifacts import open_run
    from trainwise.deploy.export import export_run

    run = open_run(args.run_dir)
    meta = export_run(run, args.format, force=args.force, tolerance=args.tolerance,
                      log=_log)
    entry = meta["artifacts"][args.format]
    p = entry["parity"]
    batches = ", ".join(f"batch {b}: {c['max_abs_diff']:.2e}" for b, c in p["batches"].items())
    path = run.run_dir / "export" / entry["file"]
    print(f"exported {meta['model']} to {path} ({entry['bytes'] / 1024:.0f} KB); input {meta['input']['shape']} "
          "raw features (standardisation in the graph)")
    print(f"parity vs eager on {p['split']} inputs: max abs diff {batches} (tolerance {p['tolerance']:.0e})")
    if not p["passed"]:
        sys.stderr.write(f"error: parity check FAILED: the {args.format} artefact's outputs differ from the eager "
                         f"model's by {p['max_abs_diff']:.3g} > {p['tolerance']:.0e}; the file is kept for "
                         "inspection and export.json records the failure\n")
        return 1
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from trainwise.deploy.artifacts import open_run
    from trainwise.deploy.quantize import quantize_run, render

    _threads(args.threads)
    run = open_run(args.run_dir)
    result = quantize_run(run, args.method, backend=args.backend, force=args.force, epochs=args.epochs, lr=args.lr,
                          calibration=args.calibration_samples, repeats=args.repeats,
                          log=_log)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from trainwise.deploy.serve import serve

    _threads(args.threads)
    serve(args.run_dir, host=args.host, port=args.port, fmt=args.format, max_batch=args.max_batch)
    return 0


def cmd_bench_infer(args: argparse.Namespace) -> int:
    from trainwise.deploy.bench import bench_infer, render

    _threads(args.threads)
    rows = bench_infer(args.run_dir, repeats=args.repeats, skip=args.skip or [],
                       log=_log)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        render(rows)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse exposes no public type
    """Register this family's subcommands on the ``trainwise`` parser."""
    raw = argparse.RawDescriptionHelpFormatter

    ex = sub.add_parser("export", help="export a run to ONNX / torch.export / TorchScript, with a parity check",
                        description="Export RUN_DIR's best weights to RUN_DIR/export/ (model.onnx, model.pt2 or "
                        "model.ts, plus export.json) with a dynamic batch dimension, then compare the artefact's "
                        "outputs with the eager model's on held-out inputs at batch sizes 1 and 64.",
                        epilog=EPILOG_EXPORT, formatter_class=raw)
    ex.add_argument("run_dir", metavar="RUN_DIR")
    ex.add_argument("--format", default="onnx", choices=["onnx", "torch-export", "torchscript"],
                    help="artefact format (onnx)")
    ex.add_argument("--tolerance", type=float, default=1e-4, help="max abs output difference allowed (1e-4)")
    ex.add_argument("--force", action="store_true", help="replace an existing artefact of this format")
    ex.set_defaults(func=cmd_export)

    q = sub.add_parser("quantize", help="int8 quantization (dynamic / static / QAT) with size, speed, accuracy",
                       description="Quantize RUN_DIR's model to int8 into RUN_DIR/quantized/ (weights + "
                       "quantize.json). Measures size, latency at batch 1 and 256 and test accuracy against fp32.",
                       epilog=EPILOG_QUANTIZE, formatter_class=raw)
    q.add_argument("run_dir", metavar="RUN_DIR")
    q.add_argument("--method", required=True, choices=["dynamic", "static", "qat"],
                   help="dynamic: int8 weights; static: calibrated int8 weights and activations; qat: "
                   "quantization-aware fine-tuning, then static int8")
    q.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"],
                   help="auto measures both and keeps the faster (auto)")
    q.add_argument("--calibration-samples", type=int, default=512,
                   help="train-split samples used to calibrate activation ranges (512)")
    q.add_argument("--epochs", type=int, default=3, help="qat: fine-tuning epochs (3)")
    q.add_argument("--lr", type=float, default=None, help="qat: fine-tuning lr (default: the run's lr / 10)")
    q.add_argument("--repeats", type=int, default=15, help="interleaved timing rounds; medians are reported (15)")
    q.add_argument("--threads", type=int, default=None, help="intra-op threads for every runtime (torch's default)")
    q.add_argument("--force", action="store_true", help="replace an existing quantized/ folder")
    q.add_argument("--json", action="store_true", help="print quantize.json instead of the summary")
    q.set_defaults(func=cmd_quantize)

    s = sub.add_parser("serve", help="serve a run over HTTP (FastAPI): POST /predict, GET /health",
                       description="Load RUN_DIR's model once and serve predictions with uvicorn. Binds to "
                       "127.0.0.1 unless --host says otherwise.", epilog=EPILOG_SERVE, formatter_class=raw)
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--port", type=int, default=8000, help="TCP port (8000)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    s.add_argument("--format", default="eager", choices=["eager", "onnx", "int8"],
                   help="which artefact answers: eager weights, export/model.onnx, or quantized/ (eager)")
    s.add_argument("--max-batch", type=int, default=4096, help="largest number of rows per request (4096)")
    s.add_argument("--threads", type=int, default=None, help="intra-op threads (torch's default)")
    s.set_defaults(func=cmd_serve)

    b = sub.add_parser("bench-infer", help="inference latency and throughput across runtimes",
                       description="Latency at batch 1 and throughput at batch 256 for eager, no_grad, "
                       "inference_mode, torch.compile, ONNX Runtime and int8, timed interleaved (medians).",
                       epilog=EPILOG_BENCH, formatter_class=raw)
    b.add_argument("run_dir", metavar="RUN_DIR")
    b.add_argument("--repeats", type=int, default=15, help="interleaved timing rounds (15)")
    b.add_argument("--skip", action="append", choices=["eager", "no_grad", "inference_mode", "compile", "onnxruntime",
                                                       "int8"], help="leave a row out (repeatable)")
    b.add_argument("--threads", type=int, default=None, help="intra-op threads for every runtime (torch's default)")
    b.add_argument("--json", action="store_true", help="print the rows as JSON")
    b.set_defaults(func=cmd_bench_infer)
