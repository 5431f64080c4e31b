"""``trainwise runs`` and ``trainwise compare``: reading run directories (no torch import on these paths).

The command bodies are imported inside the commands (deferred: ``trainwise --help`` only builds the parser)."""

from __future__ import annotations

import argparse
import json

from trainwise.errors import TrainwiseError
from trainwise.run.runs import SORT_KEYS

EPILOG_RUNS = """\
status: completed | stopped early (early stopping or a callback) | failed: non-finite loss | running (its process
is alive; for a run from another machine: files changed in the last 5 minutes) | interrupted (resumable: a signal
stopped it after a checkpoint) | crashed (resumable: killed or failed; 'trainwise resume RUN_DIR' continues it) |
crashed (no checkpoint) | unreadable (looks like a run, but its config.yaml cannot be read).
metric: test/<main metric> when the run was tested, else the best val/…, else train/….

examples:
  trainwise runs                       # runs under ./runs, oldest first
  trainwise runs runs/ --sort metric --reverse
  trainwise runs --json | jq '.[] | select(.status == "crashed (resumable)") | .path'
"""

EPILOG_COMPARE = """\
examples:
  trainwise compare runs/digits-mlp-A runs/digits-mlp-B
  trainwise compare runs/a runs/b runs/c --html compare.html      # self-contained page, plots embedded
  trainwise compare runs/a runs/b --html compare.html --force      # replace an existing page
"""


def cmd_runs(args: argparse.Namespace) -> int:
    from trainwise.run.runs import list_runs, print_runs

    rows = list_runs(args.dir, sort=args.sort, reverse=args.reverse)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_runs(rows, args.dir)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from trainwise.run.compare import load_runs, print_comparison, write_compare_html

    runs = load_runs(args.run_dirs)
    if args.html:  # check the destination before printing anything
        from pathlib import Path

        dest = Path(args.html)
        if dest.exists() and not args.force and not dest.is_dir():
            raise TrainwiseError(f"'{dest}' already exists; pass --force to replace it (nothing was written)")
    print_comparison(runs)
    if args.html:
        path = write_compare_html(runs, args.html, force=args.force)
        print(f"comparison written to {path}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse exposes no public type
    """Register ``runs`` and ``compare`` on the ``trainwise`` parser."""
    r = sub.add_parser("runs", help="table of the runs under runs/ (or DIR): status, best epoch, metric, findings",
                       description="List the run directories under DIR (default runs/): name, model, paradigm, "
                       "status,\nbest epoch, main metric, wall time, the doctor's finding codes. Reads only the files "
                       "each run\nwrote; directories that are not runs are left out.", epilog=EPILOG_RUNS,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("dir", nargs="?", default="runs", metavar="DIR", help="folder holding run directories (runs)")
    r.add_argument("--sort", default="started", choices=SORT_KEYS, metavar="KEY",
                   help=f"order by one of: {', '.join(SORT_KEYS)} (started: when the run began)")
    r.add_argument("--reverse", action="store_true", help="descending order (missing values stay last)")
    r.add_argument("--json", action="store_true", help="print a JSON list of rows (all fields, paths included)")
    r.set_defaults(func=cmd_runs)

    c = sub.add_parser("compare", help="what differs between runs: config keys, final metrics, curves overlaid",
                       description="Compare two or more run directories: the config keys whose values differ, the "
                       "final\nmetrics side by side (best per metric in bold) and the loss/metric curves per epoch "
                       "(sparklines\non a shared scale). --html also writes a self-contained page with the curves "
                       "overlaid as plots.", epilog=EPILOG_COMPARE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="two or more run directories")
    c.add_argument("--html", metavar="FILE", help="also write the comparison as a self-contained HTML page")
    c.add_argument("--force", action="store_true", help="replace an existing --html file")
    c.set_defaults(func=cmd_compare)
