"""``profile=true``: where a training step's time goes, measured with ``torch.profiler`` over a few steps.

The breakdown splits each optimizer step's wall time (CPU timeline of the training thread) into:

* ``data``: fetching the batch (trainwise's loaders, or a ``DataLoader``'s ``__next__``);
* ``forward``: from the model's forward call to the start of backward (the model and the loss);
* ``backward``: the autograd engine's work;
* ``optimizer``: unscale + gradient clipping, ``Optimizer.step`` and ``zero_grad``;
* ``epoch_end``: evaluation and checkpoint writes, when an epoch ends inside the profiled window;
* ``overhead``: everything else — the loop's own bookkeeping (train accuracy, loss buffer, the non-finite check,
  logging, schedule) and Python between the phases. Its largest operators are listed (``overhead_ops``).

How: steps are counted by a global optimizer step hook (the first optimizer that steps), and the profiler records
``ACTIVE_STEPS`` steps after ``SKIP_STEPS`` + ``WARMUP_STEPS`` (start-up effects left out). The loop labels its
own phases with ``record_function`` (train/labels.py: the batch fetch and unscale + clip while a profiler is active;
evaluation and checkpoint writes always), the forward is labelled by global module hooks installed for the profiled
run only, and the backward pass and ``Optimizer.step`` are recognised by the events PyTorch emits itself. No
function is patched. With ``profile=false`` (the default) this module is not imported and no step pays for it.

Output: ``RUN_DIR/profile.json`` (per-category mean/median ms per step and share, per-step rows, the largest
operators in overhead) and ``RUN_DIR/profile-trace.json`` (a Chrome/Perfetto trace of the window), plus a printed
table unless quiet.
On CUDA the CPU timeline shows launch work and waits; ``device_ms_per_step`` adds the GPU kernels' time.
"""

from __future__ import annotations

import json
import os
import statistics
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.autograd.profiler import record_function

from trainwise.train import labels

SKIP_STEPS, WARMUP_STEPS, ACTIVE_STEPS = 5, 2, 20
CATEGORIES = ("data", "forward", "backward", "optimizer", "epoch_end", "overhead")
# Overlaps (nested labels) go to the category listed first.
PRIORITY = ("epoch_end", "optimizer", "backward", "data", "forward")
LABEL_DATA, LABEL_FORWARD, LABEL_EVAL = labels.DATA, labels.FORWARD, labels.EVAL_FORWARD
LABEL_CLIP, LABEL_EVALUATE, LABEL_CKPT = labels.CLIP, labels.EVALUATE, labels.CHECKPOINT


def _category(name: str) -> str | None:
    """The phase a labelled (or PyTorch-named) event marks; None for ordinary operators."""
    if name in (LABEL_EVALUATE, LABEL_CKPT, LABEL_EVAL):
        return "epoch_end"
    if name == LABEL_CLIP or name.startswith(("Optimizer.step#", "Optimizer.zero_grad#")):
        return "optimizer"
    if name.startswith("autograd::engine::evaluate_function") or name == "CompiledFunctionBackward":
        return "backward"
    if name == LABEL_DATA or name.startswith("enumerate(DataLoader)#"):
        return "data"
    if name in (LABEL_FORWARD, "CompiledFunction"):
        return "forward"
    return None


# ---- forward labels (global module hooks, installed only for the profiled run) ----------------------------------


def _forward_hooks(stack: ExitStack) -> None:
    """Label the outermost module call of every forward (the model; any module a loop calls on its own, such as a
    GAN's generator): global module hooks, registered for the profiled run only."""
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    depth = [0]
    open_: list[Any] = []

    def pre(module: nn.Module, _args: Any) -> None:
        depth[0] += 1
        if depth[0] == 1:
            rf = record_function(LABEL_FORWARD if module.training and torch.is_grad_enabled() else LABEL_EVAL)
            rf.__enter__()
            open_.append(rf)

    def post(_module: nn.Module, _args: Any, _out: Any) -> None:
        depth[0] -= 1
        if depth[0] == 0 and open_:
            open_.pop().__exit__(None, None, None)

    stack.callback(register_module_forward_pre_hook(pre).remove)
    stack.callback(register_module_forward_hook(post, always_call=True).remove)


class StepProfiler:
    """Context manager: profile a window of optimizer steps of whatever trains inside it.

    >>> with StepProfiler() as p:
    ...     trainwise.fit(model, data, run_dir=None)
    >>> p.report()["categories"]["backward"]["share"]

    ``forward_hooks=False`` leaves module calls unlabelled (under torch.compile, whose ``CompiledFunction`` events
    mark the forward instead).
    """

    def __init__(self, *, skip: int = SKIP_STEPS, warmup: int = WARMUP_STEPS, active: int = ACTIVE_STEPS,
                 labels: bool = True, forward_hooks: bool = True) -> None:
        self.skip, self.warmup, self.active, self.labels = skip, warmup, active, labels
        self.forward_hooks = forward_hooks
        self.steps = 0  # optimizer steps seen
        self._optimizer: int | None = None
        self._stack = ExitStack()
        self._prof: torch.profiler.profile | None = None
        self._done = False
        self._report: dict[str, Any] | None = None

    def _on_step(self, optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        if self._optimizer is None:
            self._optimizer = id(optimizer)
        if id(optimizer) != self._optimizer or self._prof is None or self._done:
            return
        self.steps += 1
        self._prof.step()

    def _ready(self, _prof: Any) -> None:
        self._done = True  # the window is recorded; later steps pass through untouched

    def __enter__(self) -> StepProfiler:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._prof = torch.profiler.profile(
            activities=activities, on_trace_ready=self._ready,
            schedule=torch.profiler.schedule(wait=self.skip, warmup=self.warmup, active=self.active, repeat=1))
        st = self._stack
        st.callback(register_optimizer_step_post_hook(self._on_step).remove)
        if self.labels:  # the loop labels its phases (train/labels.py) while this is set
            st.callback(setattr, labels, "ACTIVE", labels.ACTIVE)
            labels.ACTIVE = True
        if self.forward_hooks:
            _forward_hooks(st)
        self._prof.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            assert self._prof is not None
            self._prof.__exit__(*exc)
        finally:
            self._stack.close()

    # ---- analysis ----------------------------------------------------------------------------------------------

    def events(self) -> list[Any]:
        if self._prof is None or self._prof.profiler is None:
            return []
        return list(self._prof.events() or [])

    def report(self) -> dict[str, Any]:
        """The breakdown (computed once). ``steps_profiled`` is 0 when the run had too few optimizer steps."""
        if self._report is None:
            self._report = analyse(self.events(), self.skip, self.warmup, self.active, self.steps)
        return self._report

    def export_trace(self, path: Path) -> bool:
        if self._prof is None or not self.events():
            return False
        self._prof.export_chrome_trace(str(path))
        return True


def _sweep(window: tuple[float, float], spans: list[tuple[float, float, str]]) -> dict[str, float]:
    """Microseconds of ``window`` covered by each category (highest priority wins); the rest is overhead."""
    s, e = window
    cuts = sorted({s, e, *(max(s, min(e, a)) for a, b, _ in spans), *(max(s, min(e, b)) for a, b, _ in spans)})
    rank = {c: i for i, c in enumerate(PRIORITY)}
    out = dict.fromkeys(CATEGORIES, 0.0)
    for a, b in zip(cuts, cuts[1:]):
        if b <= a:
            continue
        mid = (a + b) / 2
        cover = [c for x, y, c in spans if x <= mid < y]
        out[min(cover, key=rank.__getitem__) if cover else "overhead"] += b - a
    return out


def _merge_backward(bwd: list[tuple[float, float]], others: list[float]) -> list[tuple[float, float]]:
    """Join consecutive backward events (the engine's scheduling between nodes belongs to backward) unless another
    phase starts in between (a forward of the next micro-batch)."""
    merged: list[tuple[float, float]] = []
    for a, b in sorted(bwd):
        if merged and not any(merged[-1][1] <= o < a for o in others):
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def analyse(events: list[Any], skip: int, warmup: int, active: int, steps_seen: int) -> dict[str, Any]:
    windows = sorted((ev.time_range.start, ev.time_range.end, ev.thread) for ev in events
                     if ev.name.startswith("ProfilerStep"))
    base: dict[str, Any] = {"skip_steps": skip, "warmup_steps": warmup, "window_steps": active,
                            "optimizer_steps_seen": steps_seen, "device": "cuda" if torch.cuda.is_available()
                            else "cpu", "threads": torch.get_num_threads()}
    if steps_seen < skip + warmup + active:  # the last window was cut short by the end of training
        windows = windows[:-1]
    if not windows:
        return {**base, "steps_profiled": 0,
                "note": f"too few optimizer steps to profile ({steps_seen}; need more than {skip + warmup})"}
    main = windows[0][2]
    labelled: list[tuple[float, float, str]] = []
    bwd: list[tuple[float, float]] = []
    ops: list[Any] = []
    for ev in events:
        if ev.name.startswith("ProfilerStep"):
            continue
        cat = _category(ev.name)
        a, b = ev.time_range.start, ev.time_range.end
        if cat == "backward":
            bwd.append((a, b))
        elif cat is not None:
            labelled.append((a, b, cat))
        elif ev.thread == main and ev.cpu_parent is not None and ev.cpu_parent.name.startswith("ProfilerStep"):
            ops.append(ev)  # a top-level operator of the training thread
    fwd_starts = sorted(a for a, _, c in labelled if c == "forward")
    bwd_spans = _merge_backward(bwd, [a for a, _, c in labelled if c != "backward"])
    # forward runs from the model's call to the start of its backward: the loss belongs to it.
    spans = list(labelled)
    for a in fwd_starts:
        nxt = next((x for x, _ in bwd_spans if x >= a), None)
        later_fwd = next((x for x in fwd_starts if x > a), None)
        if nxt is not None and (later_fwd is None or nxt < later_fwd):
            spans.append((a, nxt, "forward"))
    spans += [(a, b, "backward") for a, b in bwd_spans]
    rows = []
    overhead_ops: dict[str, list[float]] = {}
    for s, e, _ in windows:
        inside = [(max(a, s), min(b, e), c) for a, b, c in spans if b > s and a < e]
        row = _sweep((s, e), inside)
        row["step"] = e - s
        rows.append(row)
        for op in ops:
            a = op.time_range.start
            if s <= a < e and not any(x <= a < y for x, y, _ in inside):
                overhead_ops.setdefault(op.name, [0.0, 0])
                overhead_ops[op.name][0] += op.time_range.end - a
                overhead_ops[op.name][1] += 1
    n = len(rows)
    mean_step = statistics.fmean(r["step"] for r in rows)
    cats = {c: {"mean_ms": statistics.fmean(r[c] for r in rows) / 1e3,
                "median_ms": statistics.median(r[c] for r in rows) / 1e3,
                "share": statistics.fmean(r[c] for r in rows) / mean_step if mean_step else 0.0}
            for c in CATEGORIES}
    report = {**base, "steps_profiled": n,
              "step_ms": {"mean": mean_step / 1e3, "median": statistics.median(r["step"] for r in rows) / 1e3,
                          "min": min(r["step"] for r in rows) / 1e3, "max": max(r["step"] for r in rows) / 1e3},
              "categories": cats,
              "overhead_ops": [{"name": k, "ms_per_step": v[0] / n / 1e3, "calls_per_step": v[1] / n}
                               for k, v in sorted(overhead_ops.items(), key=lambda kv: -kv[1][0])[:10]],
              "per_step_ms": [{k: round(v / 1e3, 4) for k, v in r.items()} for r in rows]}
    try:
        dev = sum(getattr(ev, "self_device_time_total", 0.0) for ev in events)
        if dev:
            report["device_ms_per_step"] = dev / n / 1e3
    except Exception:  # noqa: BLE001 - optional detail; attribute names vary across torch versions
        pass
    return report


def render(report: dict[str, Any]) -> str:
    """The breakdown as a plain-text table."""
    if not report.get("steps_profiled"):
        return f"profile: {report.get('note', 'no steps profiled')}"
    st = report["step_ms"]
    lines = [f"step-time breakdown (torch.profiler): {report['steps_profiled']} optimizer steps after "
             f"{report['skip_steps'] + report['warmup_steps']} skipped; step median {st['median']:.3f} ms, "
             f"mean {st['mean']:.3f} ms (min {st['min']:.3f}, max {st['max']:.3f})",
             f"{'category':<10} {'mean ms':>9} {'median ms':>10} {'share':>6}"]
    for c in CATEGORIES:
        v = report["categories"][c]
        lines.append(f"{c:<10} {v['mean_ms']:>9.3f} {v['median_ms']:>10.3f} {v['share'] * 100:>5.1f}%")
    if report.get("overhead_ops"):
        top = ", ".join(f"{o['name']} {o['ms_per_step'] * 1e3:.0f} µs" for o in report["overhead_ops"][:5])
        lines.append(f"largest operators in overhead (per step): {top}")
    if "device_ms_per_step" in report:
        lines.append(f"GPU kernels: {report['device_ms_per_step']:.3f} ms per step")
    return "\n".join(lines)


def write_report(profiler: StepProfiler, out_dir: Path | None, quiet: bool) -> None:
    """``profile=true``'s outputs: ``profile.json`` and the trace in the run directory, and the printed table."""
    report = profiler.report()
    if int(os.environ.get("RANK", "0") or 0) != 0:  # data-parallel: rank 0 writes and reports for the job
        return
    if out_dir is not None:
        traced = profiler.export_trace(Path(out_dir) / "profile-trace.json")
        report["trace"] = "profile-trace.json" if traced else None
        (Path(out_dir) / "profile.json").write_text(json.dumps(report, indent=2) + "\n")
    if not quiet:
        print(render(report) + (f"\nwritten: {Path(out_dir) / 'profile.json'}" if out_dir is not None else ""),
              flush=True)
