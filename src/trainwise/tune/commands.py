"""CLI commands for hyperparameter search (tune); torch and optuna are imported inside the command."""

from __future__ import annotations

import argparse

from trainwise.cli_common import allow_intermixed, split_train_args

EPILOG = """\
examples:
  trainwise tune --preset iris-mlp --trials 20                      # default space around the preset
  trainwise tune my.yaml --trials 50 --workers 2                    # tune.space from my.yaml, two processes
  trainwise tune --preset digits-mlp train.epochs=10 tune.space.optim.lr='loguniform(1e-4,1e-2)' \\
      tune.space.model.hidden='categorical([128,128], [256,256])' --trials 30
  trainwise tune my.yaml --trials 200 --storage postgresql://user@db/optuna --study exp1   # several machines

space syntax (tune.space.KEY): loguniform(low, high), uniform(low, high), int(low, high), int(low, high, log),
categorical(a, b, ...) with YAML values. Empty tune.space: learning rate, batch size, model width/depth, weight
decay, schedule (+ warmup), dropout around the config's own values. Rerunning the same command resumes the study;
--trials N means "until the study has N finished (complete or pruned) trials". Full guide: docs/tune.md.
"""


def cmd_tune(args: argparse.Namespace) -> int:
    config, overrides = split_train_args(args.items)
    from trainwise.tune.study import plan, run  # imports torch and optuna

    p = plan(config, args.preset, overrides, args.trials, args.storage, args.study, args.workers, args.out)
    return run(p, worker=args.worker)


def add_commands(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse exposes no public type
    """Register this family's subcommands on the ``trainwise`` parser."""
    t = sub.add_parser("tune", help="hyperparameter search with Optuna (TPE/random, median/hyperband pruning)",
                       description="Search hyperparameters: every trial is an ordinary run under --out "
                       "(trial-NNNN/), the study lives in --storage\nand resumes when the command is rerun. Writes "
                       "leaderboard.csv, best.yaml (ready for 'trainwise train best.yaml'),\nimportances.json and "
                       "history.png.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("items", nargs="*", metavar="[CONFIG.yaml] [key=value ...]",
                   help="optional YAML config file, then dotted key=value overrides (tune.space.optim.lr=...)")
    t.add_argument("--preset", help="built-in preset to start from (see 'trainwise presets')")
    t.add_argument("--trials", type=int, metavar="N",
                   help="run until the study has N finished (complete + pruned) trials (default: tune.trials)")
    t.add_argument("--storage", metavar="URL",
                   help="Optuna RDB storage, e.g. sqlite:///tune.db or postgresql://… (default sqlite:///OUT/study.db)")
    t.add_argument("--study", metavar="NAME", help="study name in the storage (default: the config's name)")
    t.add_argument("--workers", type=int, default=1, metavar="K",
                   help="worker processes on this machine sharing the study (default 1)")
    t.add_argument("--out", metavar="DIR", help="output directory (default runs/tune-<study>)")
    t.add_argument("--worker", help=argparse.SUPPRESS)  # internal: PARENT:INDEX:QUOTA of a worker process
    t.set_defaults(func=cmd_tune)
    allow_intermixed(t)
