"""Knowledge distillation: student vs no-teacher twin (tasks/distillation.py, `trainwise distill`)."""

from __future__ import annotations

import _common as c
import numpy as np
import torch

import trainwise
from trainwise.tasks.distillation import Distillation


def train_student(task: Distillation, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(1000 + seed)  # the same student init for both arms of a seed
    student = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[32])
    opt = torch.optim.Adam(student.parameters(), 3e-3)
    for _ in range(steps):  # full-batch steps on the small labelled set, with the task's own loss
        loss, _ = task.train_loss(student, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return student.eval()


def main() -> None:
    c.setup()
    xs, ys = c.digits()
    steps = int(c.pick(300, 150))
    acc: dict[str, list[float]] = {"hard labels": [], "soft targets T=4": []}
    entropies = []
    for seed in c.seeds():  # per seed: which digits are labelled, the teacher, the student's init
        perm = np.random.default_rng(seed).permutation(len(ys))
        few, test = perm[:int(c.pick(100, 60))], perm[1000:]
        torch.manual_seed(seed)
        teacher_model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[256, 256])
        teacher = trainwise.fit(teacher_model, {"train": (xs[perm[:900]], ys[perm[:900]]),
                                                "val": (xs[perm[900:1000]], ys[perm[900:1000]]),
                                                "test": (xs[test], ys[test])},
                                epochs=int(c.pick(20, 8)), run_dir=None, seed=seed)

        def task(alpha: float, temperature: float, teacher: trainwise.FitResult = teacher) -> Distillation:
            t = Distillation(10, 0.0, teacher="in-memory", temperature=temperature, alpha=alpha)
            t.teacher = teacher.model.eval().requires_grad_(False)  # what setup() loads from a teacher run
            return t

        x_few, y_few = torch.tensor(xs[few]), torch.tensor(ys[few])
        x_test, y_test = torch.tensor(xs[test]), torch.tensor(ys[test])
        with torch.no_grad():
            p4 = torch.softmax(teacher.model(x_few) / 4, 1)
        entropies.append(-(p4 * p4.clamp_min(1e-12).log()).sum(1).mean().item())
        for label, alpha in (("hard labels", 0.0), ("soft targets T=4", 0.9)):
            student = train_student(task(alpha, 4.0), x_few, y_few, steps, seed)
            with torch.no_grad():
                acc[label].append((student(x_test).argmax(1) == y_test).float().mean().item())
        c.say(f"seed {seed}: teacher (900 digits) test accuracy {teacher.summary['test/accuracy']:.3f}; student on "
              f"{len(few)} digits: hard labels {acc['hard labels'][-1]:.3f}, soft targets "
              f"{acc['soft targets T=4'][-1]:.3f}")
    c.compare("soft targets at temperature T carry more signal than hard labels", acc["soft targets T=4"],
              acc["hard labels"], names=("soft targets", "hard labels"), fmt=".3f", what="test accuracy",
              context=f"a 64→32→10 student, {steps} full-batch Adam steps on {len(few)} labelled digits (a new "
                      f"labelled set and teacher per seed); soft = the teacher's T=4 targets with α=0.9, carrying "
                      f"{np.mean(entropies):.2f} nats per sample where a one-hot label carries 0")

    torch.manual_seed(0)
    s = torch.randn(256, 10, requires_grad=True)
    xb = x_few[:1].expand(256, -1)
    norms = {}
    for temp in (1.0, 2.0, 4.0, 8.0, 16.0):
        t = task(1.0, temp)
        t.teacher = lambda _x: torch.randn(256, 10, generator=torch.Generator().manual_seed(1)) * 3  # type: ignore
        loss, _ = t.train_loss(lambda _x: s, xb, torch.zeros(256, dtype=torch.long))  # type: ignore[arg-type]
        (g,) = torch.autograd.grad(loss, s)
        norms[temp] = g.norm().item()
    with_t2 = list(norms.values())
    without = [v / t ** 2 for t, v in norms.items()]
    c.check("the KL term is multiplied by T²", max(with_t2[1:]) / min(with_t2[1:]) < 2 and without[1] / without[-1] > 30,
            "gradient norm of trainwise's soft term w.r.t. student logits for T = 1, 2, 4, 8, 16: "
            + ", ".join(f"{v:.4f}" for v in with_t2) + " with T² (roughly constant from T=2); without it "
            + ", ".join(f"{v:.2e}" for v in without) + " (falls as 1/T²)")


if __name__ == "__main__":
    main()
