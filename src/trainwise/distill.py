"""``trainwise distill``: train a student on a finished teacher run, and its no-teacher twin for comparison.

The student config is the teacher's (or a given preset / YAML) with overrides applied; its data section and seed are
always the teacher's, so both see the same split and preprocessing. The twin is the same student, same seed, trained
with ``distill.alpha=0`` (plain cross-entropy through the same code path), so the difference is the teacher's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from trainwise.config import compose, validate
from trainwise.errors import TrainwiseError


def student_config(teacher: str | Path, config: str | None, preset: str | None, overrides: list[str]) -> DictConfig:
    """Config errors answer here, before torch is imported."""
    tdir = Path(teacher)
    if not (tdir / "config.yaml").is_file():
        raise TrainwiseError(f"--teacher '{tdir}' is not a run directory (no config.yaml); give a finished "
                             "'trainwise train' run")
    if not any((tdir / w).is_file() for w in ("best.safetensors", "final.safetensors")):
        raise TrainwiseError(f"teacher run '{tdir}' holds no weights; let it finish first")
    tcfg = compose(tdir / "config.yaml")
    base = compose(config, preset, overrides) if (config or preset) else compose(tdir / "config.yaml",
                                                                                 overrides=overrides)
    base.data = tcfg.data  # same data, split and preprocessing as the teacher
    base.seed = tcfg.seed
    base.paradigm.name = "distill"
    base.distill.teacher = str(tdir)
    base.name = f"{base.name}-student"
    validate(base)
    return base


def _params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def distill(cfg: DictConfig, out_dir: Path, quiet: bool = True) -> dict[str, Any]:
    # deferred: these import torch, and student_config (same module) must answer config errors without it
    from trainwise.reopen import open_run
    from trainwise.run.rundir import write_json
    from trainwise.runner import evaluate_run, train

    teacher_dir = Path(cfg.distill.teacher)
    _, _, _, teacher = open_run(teacher_dir)
    teacher_metrics = evaluate_run(teacher_dir, "test")
    student = train(cfg, run_dir=out_dir / "student", quiet=quiet)
    twin_cfg = cast(DictConfig, OmegaConf.merge(cfg, {"distill": {"alpha": 0.0}, "name": cfg.name.replace("-student", "-no-teacher")}))
    twin = train(twin_cfg, run_dir=out_dir / "no-teacher", quiet=quiet)
    main = student.summary["main_metric"]
    result = {
        "metric": f"test/{main}",
        "temperature": cfg.distill.temperature, "alpha": cfg.distill.alpha,
        "teacher": {"run_dir": str(teacher_dir), "params": _params(teacher), "value": teacher_metrics.get(main)},
        "student": {"run_dir": str(out_dir / "student"), "params": _params(student.model),
                    "value": student.summary.get(f"test/{main}")},
        "no_teacher": {"run_dir": str(out_dir / "no-teacher"), "params": _params(twin.model),
                       "value": twin.summary.get(f"test/{main}")},
    }
    s, t = result["student"]["value"], result["no_teacher"]["value"]
    result["gain"] = None if s is None or t is None else s - t
    write_json(out_dir / "distill.json", result)
    return result
