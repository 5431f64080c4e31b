"""Saving / checkpoints: pickle-free state, full training-state checkpoints and exact resume (train/checkpoint.py)."""

from __future__ import annotations

import copy
import json
import pickle
import tempfile
from pathlib import Path

import _common as c
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import trainwise


def segment(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
            epochs: range) -> None:
    """Epochs of a loop shaped like trainwise's: order from (seed, epoch), dropout from the global RNG."""
    for epoch in epochs:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1000 + epoch))
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()


def main() -> None:
    c.setup()
    x, y = c.digits(int(c.pick(1024, 512)))
    x, y = torch.tensor(x), torch.tensor(y)
    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[64], dropout=0.2)

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(model, Path(tmp) / "module.pt")
        torch.save(model.state_dict(), Path(tmp) / "state.pt")
        try:
            torch.load(Path(tmp) / "module.pt")  # torch's default: weights_only=True
            module_load = "loaded"
        except pickle.UnpicklingError as exc:
            module_load = f"refused ({str(exc).splitlines()[0][:60]}…)"
        sd = torch.load(Path(tmp) / "state.pt")
        fresh = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[64], dropout=0.2)
        fresh.load_state_dict(sd)
        same = all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    c.check("saving state_dicts beats pickling modules", module_load != "loaded" and same,
            f"torch.load of a pickled module with the safe default weights_only=True: {module_load}; loading it "
            f"needs weights_only=False, i.e. running arbitrary pickled code and the exact class import path. The "
            f"state_dict loads with weights_only=True into a freshly built model, bitwise equal: {same}")

    # Ablation: resume at the halfway point restoring less and less of the training state.
    n = int(c.pick(3, 2))
    torch.manual_seed(0)
    ref_model = copy.deepcopy(model)
    ref_opt = torch.optim.Adam(ref_model.parameters(), 1e-3)
    segment(ref_model, ref_opt, x, y, range(n))
    half_w, half_opt = copy.deepcopy(ref_model.state_dict()), copy.deepcopy(ref_opt.state_dict())
    half_rng = torch.get_rng_state()
    segment(ref_model, ref_opt, x, y, range(n, 2 * n))

    results = {}
    for label, keep in (("weights only", set()), ("+ optimizer", {"opt"}), ("+ optimizer + epoch", {"opt", "epoch"}),
                        ("+ optimizer + epoch + RNG", {"opt", "epoch", "rng"})):
        m = copy.deepcopy(model)
        m.load_state_dict(half_w)
        opt = torch.optim.Adam(m.parameters(), 1e-3)
        if "opt" in keep:
            opt.load_state_dict(copy.deepcopy(half_opt))  # load_state_dict keeps these tensors; steps mutate them
        torch.manual_seed(123)  # a new process: fresh global RNG unless its state is restored
        if "rng" in keep:
            torch.set_rng_state(half_rng)
        start = n if "epoch" in keep else 0
        segment(m, opt, x, y, range(start, start + n))
        results[label] = max((a - b).abs().max().item() for a, b in zip(m.state_dict().values(),
                                                                           ref_model.state_dict().values()))
        c.say(f"resume with {label:<26}: max |weight − uninterrupted| after {n} more epochs = {results[label]:.2e}")

    with tempfile.TemporaryDirectory() as tmp:
        trainwise.fit(copy.deepcopy(model), (x.numpy(), y.numpy()), epochs=1, run_dir=Path(tmp) / "run")
        ckpt = sorted((Path(tmp) / "run" / "checkpoints").iterdir())[-1]
        files = sorted(p.name for p in ckpt.iterdir())
        state = json.loads((ckpt / "state.json").read_text())
        rng_keys = [k for k in load_file(ckpt / "extra.safetensors") if "rng" in k.lower()]
    c.say(f"a trainwise checkpoint ({ckpt.name}): {files}; state.json top-level keys {sorted(state)[:12]}; "
          f"RNG tensors {rng_keys}")
    only_full = results["+ optimizer + epoch + RNG"] == 0 and all(v > 0 for k, v in results.items()
                                                                   if k != "+ optimizer + epoch + RNG")
    c.check("a resumable checkpoint needs optimizer state, epoch/step and RNG state", only_full,
            "resuming a dropout MLP (Adam) halfway: max weight difference vs the uninterrupted run "
            + ", ".join(f"{k} {v:.1e}" for k, v in results.items())
            + f"; {'only the full state is' if only_full else 'not only the full state is'} bit-exact. trainwise's "
            f"checkpoint files: {files}")


if __name__ == "__main__":
    main()
