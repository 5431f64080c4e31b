"""eval() vs no_grad() vs inference_mode(): trainwise's evaluate uses eval() + inference_mode() (train/loop.py)."""

from __future__ import annotations

import _common as c
import torch

import trainwise
from trainwise.data.loaders import make_loader
from trainwise.tasks.classification import Classification


def main() -> None:
    c.setup()
    x = torch.randn(64, 32)
    model = trainwise.create_model("mlp", in_shape=(32,), out_dim=4, hidden=[64, 64], norm="batch", dropout=0.3)
    plain = trainwise.create_model("mlp", in_shape=(32,), out_dim=4, hidden=[64, 64])  # no dropout, no BN

    model.eval()
    e1, e2 = model(x), model(x)
    plain.train()
    p_train = plain(x)
    plain.eval()
    p_eval = plain(x)
    c.check("eval() changes dropout/BN only", torch.equal(e1, e2) and e1.grad_fn is not None
            and torch.equal(p_train, p_eval),
            f"under eval() the dropout+BN model is deterministic ({torch.equal(e1, e2)}) yet still builds a graph "
            f"(grad_fn {type(e1.grad_fn).__name__}); a model without dropout/BN gives bitwise the same output in "
            f"train and eval ({torch.equal(p_train, p_eval)})")

    model.train()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    before = bn.running_mean.clone()
    with torch.no_grad():
        n1, n2 = model(x), model(x)
    stats_moved = not torch.equal(before, bn.running_mean)
    c.check("no_grad() stops graph building only", n1.grad_fn is None and not n1.requires_grad
            and not torch.equal(n1, n2) and stats_moved,
            f"under no_grad() in train mode: no graph (grad_fn {n1.grad_fn}), but dropout still differs between "
            f"two forwards (max diff {(n1 - n2).abs().max():.2f}) and BN running_mean still moved ({stats_moved})")

    # What trainwise.evaluate runs the model under, read from inside the forward by a hook.
    seen: list[tuple[bool, bool, bool]] = []
    model.register_forward_hook(lambda m, _i, _o: seen.append((m.training, torch.is_inference_mode_enabled(),
                                                                torch.is_grad_enabled())))
    y = torch.randint(0, 4, (64,))
    loader = make_loader((x, y), 32, shuffle=False, drop_last=False, seed=0, device=torch.device("cpu"))
    model.train()
    trainwise.evaluate(model, loader, Classification(4), "32", torch.device("cpu"))
    both = all(not tr and inf and not grad for tr, inf, grad in seen)
    c.check("you need both", e1.grad_fn is not None and not torch.equal(n1, n2) and both and model.training,
            f"eval() alone still builds graphs (grad_fn set); no_grad() alone gives random outputs and moves BN "
            f"statistics; inside trainwise.evaluate every forward ran with training={seen[0][0]}, "
            f"inference_mode={seen[0][1]}, grad enabled={seen[0][2]} ({len(seen)} batches), and the train flag "
            f"was restored afterwards ({model.training})")

    big = trainwise.create_model("mlp", in_shape=(256,), out_dim=10, hidden=[256, 256]).eval()
    xb = torch.randn(int(c.pick(64, 32)), 256)

    def run_no_grad() -> None:
        with torch.no_grad():
            big(xb)

    def run_inference() -> None:
        with torch.inference_mode():
            big(xb)

    t = c.rounds({"no_grad": run_no_grad, "inference_mode": run_inference}, number=int(c.pick(200, 50)))
    # "~10%": judged against a 5% bar, so a real ~10% gain passes and a gain within the noise does not.
    c.compare("inference_mode is ~10% faster than no_grad", [v * 1e6 for v in t["inference_mode"]],
              [v * 1e6 for v in t["no_grad"]], names=("inference_mode", "no_grad"), higher=False, ratio=True,
              margin=0.05, over="rounds", kind="cpu-speed", fmt=".1f", what="µs per forward",
              context=f"MLP 256→256→256→10 forward, batch {xb.shape[0]}, 1 thread")


if __name__ == "__main__":
    main()
