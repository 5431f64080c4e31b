"""``trainwise`` command line: a thin layer over the Python API.

User mistakes print one ``error: …`` line and exit 2; bugs print a traceback and exit 1.

Deferred imports: every trainwise module a command needs is imported inside that command, so ``trainwise --help``
and config errors answer without importing torch (tests/test_deploy.py and tests/test_tune.py check it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from trainwise.cli_common import allow_intermixed, split_train_args
from trainwise.errors import TrainingInterrupted, TrainwiseError

EPILOG_TRAIN = """\
examples:
  trainwise train                                 # default preset digits-cnn
  trainwise train --preset digits-mlp optim.lr=3e-4 train.epochs=10
  trainwise train my.yaml data.batch_size=128     # YAML file, then overrides
  trainwise train runs/digits-cnn-20261126-120000/config.yaml   # reproduce a run
  trainwise train data.source=csv data.path=data.csv data.target=label model.name=mlp

config keys (key=value, dotted): name, seed, device (auto|cpu|cuda|mps), precision (auto|32|bf16-mixed|16-mixed),
compile, profile (step-time breakdown into RUN_DIR/profile.json),
data.* (source, path, target, task, val_fraction, test_fraction, standardize, batch_size, eval_batch_size,
loader, num_workers, pin_memory, persistent_workers, prefetch_factor, drop_last, augment, holdout_class, classes,
label_fraction, options), model.* (name and the
model's arguments: see 'trainwise models'), optim.* (name, lr, weight_decay, momentum, nesterov, beta1, beta2, eps,
group_lr), schedule.* (name, warmup_fraction, min_lr_ratio, step_size, gamma, factor, patience, cycle_epochs,
base_lr_ratio), train.* (epochs, grad_clip, accumulate, label_smoothing, early_stopping, monitor, patience,
ema_decay, mixup_alpha, cutmix_alpha, log_every, freeze_epochs), paradigm.* (name: supervised|autoencoder|vae|gan|
contrastive|seq2seq|distill, temperature, kl_weight, d_lr_ratio, beam_size, samples), distill.*, tune.*, checkpoint.*,
faults.*, doctor.*, tracking.* (backends: none by default; tensorboard, mlflow; mlflow_uri, experiment).
Transfer learning: model.init_from=RUN_DIR|FILE|preset:NAME. Full reference: docs/config.md.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse would print the usage block too)
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def cmd_train(args: argparse.Namespace) -> int:
    from trainwise.config import compose

    if args.resume:
        if args.items or args.preset or args.run_dir:
            raise TrainwiseError("--resume RUN_DIR takes no config, preset, overrides or --run-dir: the run's own "
                                 "config.yaml is used")
        from trainwise.runner import resume

        result = resume(args.resume, quiet=args.quiet)
    else:
        config, overrides = split_train_args(args.items)
        cfg = compose(config, args.preset, overrides)  # config errors answer before torch is imported
        if args.run_dir is not None and _rank() == 0:  # under torchrun, rank 0 creates it; the others follow
            from trainwise.run.paths import check_new_run_dir

            check_new_run_dir(args.run_dir)
        from trainwise.runner import train

        result = train(cfg, run_dir=args.run_dir or "auto", quiet=args.quiet)
    _print_result(result, args.quiet)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from trainwise.runner import resume

    _print_result(resume(args.run_dir, quiet=args.quiet), args.quiet)
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from trainwise.runner import checkpoint_table

    rows = checkpoint_table(args.run_dir)
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"no checkpoints in {args.run_dir}")
        return 0
    print(f"{'checkpoint':<16}{'step':>8}{'epoch':>7}{'batch':>7}  {'monitor':<22}{'size':>10}  verified")
    for r in rows:
        mon = f"{r.get('monitor', '')}={r['value']:.4f}" if r.get("value") is not None else "-"
        ok = "yes" if r["verified"] else f"NO: {r['problem']}"
        print(f"{r['name']:<16}{r['step']:>8}{r.get('epoch', '-'):>7}{r.get('batch', '-'):>7}  {mon:<22}"
              f"{r['bytes'] / 1024:>8.0f}KB  {ok}")
    return 0


def _rank() -> int:
    """This process's rank under torchrun (0 otherwise), read before torch.distributed is set up."""
    import os

    return int(os.environ.get("RANK", "0") or 0)


def _print_result(result, quiet: bool) -> None:  # noqa: ANN001 - FitResult, imported lazily
    if _rank() != 0:  # one process reports for the whole data-parallel job
        return
    s = result.summary
    main = f"test/{s['main_metric']}"
    shown = {k: v for k, v in s.items() if k.startswith("test/")}
    shown.update({"epochs": s["epochs"], "wall_seconds": s["wall_seconds"], "stopped": s["stopped"]})
    if not quiet:
        from trainwise.progress import Reporter

        Reporter(False, s["main_metric"], 0).summary("result", shown)
    print(f"run directory: {result.run_dir}")
    if main in s:
        print(f"{main}: {s[main]:.4f}")


def cmd_presets(args: argparse.Namespace) -> int:
    from trainwise.config import preset_description, preset_names

    for name in preset_names():
        print(f"{name:<22} {preset_description(name)}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from trainwise.models import get_spec, list_models

    for name in list_models(args.pattern):
        spec = get_spec(name)
        print(f"{name}: {spec.description}")
        for arg, (tp, default) in spec.arguments().items():
            tname = getattr(tp, "__name__", str(tp)).replace("typing.", "")
            print(f"    {arg}: {tname} = {default!r}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from trainwise.runner import evaluate_run

    metrics = evaluate_run(args.run_dir, args.split)
    if args.json:
        print(json.dumps({f"{args.split}/{k}": v for k, v in metrics.items()}))
    else:
        for k, v in metrics.items():
            print(f"{args.split}/{k}: {v:.4f}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from trainwise.deploy.predict import predict_run

    dest = predict_run(args.run_dir, args.input, args.out, args.force, fmt=args.format)
    print(f"predictions written to {dest}")
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("trainwise")
    except metadata.PackageNotFoundError:
        return "unknown"


def cmd_diagnose(args: argparse.Namespace) -> int:
    from trainwise.doctor.diagnose import diagnose_run
    from trainwise.doctor.findings import render

    findings = diagnose_run(args.run_dir)
    if args.json:
        print(json.dumps({"findings": [f.to_dict() for f in findings]}, indent=2))
    else:
        print(render(findings))
    return 0


def cmd_overfit_batch(args: argparse.Namespace) -> int:
    from trainwise.config import compose

    config, overrides = split_train_args(args.items)
    cfg = compose(config, args.preset, overrides)
    from trainwise.checkup.overfit import overfit_batch

    r = overfit_batch(cfg, steps=args.steps)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{'PASS' if r['passed'] else 'FAIL'}: loss {r['initial_loss']:.4g} → best {r['best_loss']:.4g} "
              f"in {r['steps']} steps on one batch of {r['batch_size']} ({r['rule']})")
        print(r["verdict"])
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from trainwise.checkup.report import write_report

    path = write_report(args.run_dir, args.out, force=args.force)
    print(f"report written to {path}")
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwise.config import compose

    config, overrides = split_train_args(args.items)
    cfg = compose(config, args.preset, overrides)
    out = Path(args.out) if args.out else Path("runs") / f"lr-find-{cfg.name}"
    from trainwise.checkup.lr_find import lr_find

    r = lr_find(cfg, out, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    print(f"suggested lr: {r['suggested_lr']:.3g} ({r['rule']}); loss minimum at lr {r['min_loss_lr']:.3g}")
    print(f"plot: {r['plot']}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from trainwise.distill import student_config

    config, overrides = split_train_args(args.items)
    cfg = student_config(args.teacher, config, args.preset, overrides)
    from trainwise.run.paths import discarded_on_failure, new_run_dir

    created = args.run_dir is None or not os.path.exists(args.run_dir)
    out = new_run_dir(cfg.name.replace("-student", "") + "-distill", args.run_dir)
    from trainwise.distill import distill

    # A student refused before it trained (its model does not fit the teacher's data) leaves no empty folder behind.
    with discarded_on_failure(out, remove_dir=created):
        r = distill(cfg, out, quiet=args.quiet)
    metric = r["metric"]
    print(f"{'model':<12}{'params':>10}  {metric}")
    for key in ("teacher", "student", "no_teacher"):
        v = r[key]["value"]
        print(f"{key:<12}{r[key]['params']:>10,}  {v:.4f}" if v is not None else f"{key:<12}{r[key]['params']:>10,}  -")
    if r["gain"] is not None:
        print(f"distillation gain over the no-teacher twin: {r['gain']:+.4f} (T={r['temperature']}, "
              f"alpha={r['alpha']})")
    print(f"written: {out / 'distill.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trainwise", description="trainwise: train, diagnose, resume and ship PyTorch models. "
                "Run 'trainwise COMMAND --help' for a command's options.")
    p.add_argument("--version", action="version", version=f"trainwise {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model from a preset, a YAML config and key=value overrides",
                       description="Train from a built-in preset → optional YAML file → key=value overrides. With "
                       "neither CONFIG nor --preset, the preset is digits-cnn.",
                       epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("items", nargs="*", metavar="[CONFIG.yaml] [key=value ...]",
                   help="optional YAML config file, then dotted key=value overrides (optim.lr=3e-4)")
    t.add_argument("--preset", help="built-in preset to start from (see 'trainwise presets')")
    t.add_argument("--run-dir", help="run directory to create (must not exist); default runs/<name>-<timestamp>")
    t.add_argument("--quiet", action="store_true", help="no progress bar or tables; print only the result lines")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its newest valid checkpoint")
    t.set_defaults(func=cmd_train)
    allow_intermixed(t)

    r = sub.add_parser("resume", help="continue a run from its newest valid checkpoint (= train --resume)",
                       description="Continue RUN_DIR from its newest valid checkpoint. Torn or corrupted checkpoints "
                       "are reported and skipped. Resume is exact: the final weights equal an uninterrupted run's.")
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    r.set_defaults(func=cmd_resume)

    c = sub.add_parser("checkpoints", help="list a run's checkpoints and whether each verifies",
                       description="List RUN_DIR's checkpoints: step, epoch, batch, monitored metric, size, verified.")
    c.add_argument("run_dir", metavar="RUN_DIR")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_checkpoints)

    ps = sub.add_parser("presets", help="list built-in presets", description="List built-in presets.")
    ps.set_defaults(func=cmd_presets)

    m = sub.add_parser("models", help="list models and their arguments",
                       description="List registered models with their typed arguments (set as model.ARG=VALUE).")
    m.add_argument("pattern", nargs="?", default="*", help="glob over model names, e.g. 'c*'")
    m.set_defaults(func=cmd_models)

    e = sub.add_parser("evaluate", help="re-evaluate a run's saved weights",
                       description="Re-evaluate a run's best weights on a split rebuilt from its config and seed.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to evaluate (test)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="predict for a CSV, .npz or image file with a run's weights",
                        description="Apply a run's preprocessing and model to raw inputs (CSV with the training "
                        "feature columns, .npz with an array 'x', or one image file for image runs: greyscale, "
                        "resized to the input shape, 0..255 mapped onto the training value range); writes a CSV "
                        "of predictions.", formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="examples:\n"
                        "  trainwise predict RUN_DIR new.csv                  # writes new.predictions.csv\n"
                        "  trainwise predict RUN_DIR new.npz --out preds.csv --force\n"
                        "  trainwise predict RUN_DIR digit.png                # image runs: one image file\n"
                        "  trainwise predict RUN_DIR new.npz --format onnx    # after 'trainwise export RUN_DIR'\n"
                        "  trainwise predict RUN_DIR new.npz --format int8    # after 'trainwise quantize RUN_DIR'\n")
    pr.add_argument("run_dir", metavar="RUN_DIR")
    pr.add_argument("input", metavar="INPUT", help="CSV, .npz or image file (.png, .jpg, ...) of raw inputs")
    pr.add_argument("--out", help="output CSV (default: INPUT's name with .predictions.csv, next to it)")
    pr.add_argument("--force", action="store_true", help="replace an existing output file")
    pr.add_argument("--format", default="eager", choices=["eager", "onnx", "int8"],
                    help="eager: best weights in PyTorch; onnx: export/model.onnx ('trainwise export' first); "
                    "int8: quantized/ ('trainwise quantize' first) (eager)")
    pr.set_defaults(func=cmd_predict)
    dg = sub.add_parser("diagnose", help="re-analyse a finished or crashed run and print its findings",
                        description="Findings (code, severity, message, evidence, fixes) for RUN_DIR, computed from "
                        "its metrics.jsonl, monitors.jsonl, preflight.json and config.yaml.")
    dg.add_argument("run_dir", metavar="RUN_DIR")
    dg.add_argument("--json", action="store_true", help="print {\"findings\": [...]} as JSON")
    dg.set_defaults(func=cmd_diagnose)

    doc = sub.add_parser("doctor", help="diagnostic experiments (overfit-batch)",
                         description="Diagnostic experiments on a config.")
    doc_sub = doc.add_subparsers(dest="doctor_command", metavar="CHECK", parser_class=_Parser, required=True)
    ob = doc_sub.add_parser("overfit-batch", help="can the model drive the loss to ~0 on one batch?",
                            description="Train on a single batch; if the loss cannot reach near zero the problem is "
                            "the model or the loss, not the data.")
    ob.add_argument("items", nargs="*", metavar="[CONFIG.yaml] [key=value ...]")
    ob.add_argument("--preset", help="built-in preset to start from")
    ob.add_argument("--steps", type=int, default=200, help="optimizer steps on the batch (200)")
    ob.add_argument("--json", action="store_true", help="print the result as JSON")
    ob.set_defaults(func=cmd_overfit_batch)
    allow_intermixed(ob)

    rp = sub.add_parser("report", help="write a self-contained report.html for a run",
                        description="Write RUN_DIR/report.html: curves, lr, gradient norms, dead units, confusion "
                        "matrix, findings and config, with every plot embedded.")
    rp.add_argument("run_dir", metavar="RUN_DIR")
    rp.add_argument("--out", help="output file (default RUN_DIR/report.html)")
    rp.add_argument("--force", action="store_true", help="replace an existing --out file")
    rp.set_defaults(func=cmd_report)

    lf = sub.add_parser("lr-find", help="learning-rate range test: sweep the lr exponentially, suggest one",
                        description="Exponential lr sweep on the config's model and data; smoothed loss; suggests "
                        "the lr of steepest descent. Writes lr_find.png and lr_find.json.")
    lf.add_argument("items", nargs="*", metavar="[CONFIG.yaml] [key=value ...]")
    lf.add_argument("--preset", help="built-in preset to start from")
    lf.add_argument("--out", help="output directory (default runs/lr-find-<name>)")
    lf.add_argument("--start-lr", type=float, default=1e-7)
    lf.add_argument("--end-lr", type=float, default=10.0)
    lf.add_argument("--steps", type=int, default=100)
    lf.set_defaults(func=cmd_lr_find)
    allow_intermixed(lf)

    ds = sub.add_parser("distill", help="train a small student from a finished teacher run",
                        description="Knowledge distillation: the student (the teacher's config, or --preset/CONFIG, "
                        "with key=value overrides) trains on alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*CE on "
                        "the teacher's data and seed; its no-teacher twin (alpha=0, same seed) is trained too, and "
                        "both are compared with the teacher (accuracy, parameter count).",
                        epilog="examples:\n  trainwise distill --teacher runs/digits-cnn-X model.name=mlp "
                        "'model.hidden=[32]'\n  trainwise distill --teacher runs/T --preset digits-mlp "
                        "distill.temperature=2 distill.alpha=0.7",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ds.add_argument("items", nargs="*", metavar="[CONFIG.yaml] [key=value ...]")
    ds.add_argument("--teacher", required=True, metavar="RUN_DIR", help="finished classification run to learn from")
    ds.add_argument("--preset", help="student preset (default: the teacher's config)")
    ds.add_argument("--run-dir", help="output directory (must not exist); default runs/<name>-distill-<timestamp>")
    ds.add_argument("--quiet", action="store_true", help="no progress bars")
    ds.set_defaults(func=cmd_distill)
    allow_intermixed(ds)

    # Command families that live in their own packages (each imports torch only inside its commands).
    from trainwise.data_cmd import add_commands as add_data_commands
    from trainwise.deploy.commands import add_commands as add_deploy_commands
    from trainwise.recipes_cmd import add_commands as add_recipe_commands
    from trainwise.run.commands import add_commands as add_run_commands
    from trainwise.tune.commands import add_commands as add_tune_commands

    add_deploy_commands(sub)
    add_data_commands(sub)
    add_tune_commands(sub)
    add_recipe_commands(sub)
    add_run_commands(sub)
    _add_allow_code(sub)
    return p


def _add_allow_code(sub: argparse._SubParsersAction) -> None:
    """``--allow-code`` on every command (and sub-command): a config file alone may not make trainwise import and run
    Python code (``data.source=module:function``); the person typing the command opts in (docs/security.md)."""
    for parser in set(sub.choices.values()):
        if "--allow-code" in parser._option_string_actions:  # noqa: SLF001 - argparse has no public lookup
            continue
        parser.add_argument("--allow-code", action="store_true",
                            help="let the config run Python code it names (data.source=module:function); only for "
                            "configs you trust")
        for action in parser._subparsers._group_actions if parser._subparsers else ():  # noqa: SLF001
            _add_allow_code(action)


def _error_line(message: str) -> None:
    """``error: MESSAGE`` on stderr. A message may quote a lone surrogate (a YAML key written as ``"\\udead"`` in a
    downloaded config): escaped here, so writing it can never fail whatever error handler stderr has."""
    line = f"error: {message}\n".encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stderr.write(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from trainwise.safety import restore_code_allowed, set_code_allowed

    previous = set_code_allowed(bool(getattr(args, "allow_code", False)))
    try:
        return int(args.func(args) or 0)
    except TrainwiseError as exc:
        # one line whatever the message holds (a library's multi-line text quoted in it)
        _error_line(" ".join(str(exc).split()))
        return 2
    except OSError as exc:
        # The machine refused a write (disk full, read-only or immutable folder, file-size limit, no permission):
        # the user's environment, not a bug, so one line; any other OSError is unexpected and keeps its traceback.
        from trainwise.safety import WRITE_ERRNOS, write_error

        if exc.errno not in WRITE_ERRNOS:
            raise
        _error_line(str(write_error(exc.filename or "?", exc)))
        return 2
    except TrainingInterrupted as exc:
        if _rank() == 0:
            sys.stderr.write(f"{exc}\n")
        return 128 + exc.signum
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:  # `trainwise … | head`: the reader left; not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        restore_code_allowed(previous)


if __name__ == "__main__":
    raise SystemExit(main())
