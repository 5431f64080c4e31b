"""Mixed precision: autocast + GradScaler for fp16, bf16 without a scaler (train/precision.py)."""

from __future__ import annotations

import _common as c
import torch
import torch.nn.functional as F

import trainwise
from trainwise.train.precision import grad_scaler


def real_gradients() -> torch.Tensor:
    """All weight gradients of a digits MLP after one fp32 backward, scaled into the range where fp16 fails."""
    x, y = c.digits(256)
    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[256, 256])
    F.cross_entropy(model(torch.tensor(x)), torch.tensor(y)).backward()
    g = torch.cat([p.grad.flatten() for p in model.parameters()])
    return g * 1e-4  # e.g. a loss averaged over a huge batch or a deep net's early layers


def main() -> None:
    c.setup()
    f16, bf16, f32 = torch.finfo(torch.float16), torch.finfo(torch.bfloat16), torch.finfo(torch.float32)
    tiny = 2.0 ** -24
    c.say(f"fp16: max {f16.max:.3g}, smallest normal {f16.smallest_normal:.3g}; bf16: max {bf16.max:.3g}, smallest "
          f"normal {bf16.smallest_normal:.3g}; fp32: max {f32.max:.3g}, smallest normal {f32.smallest_normal:.3g}")
    g = real_gradients()
    nonzero = g != 0
    lost16 = ((g.half() == 0) & nonzero).float().sum().item() / nonzero.sum().item()
    scale = 2.0 ** 16  # GradScaler's initial scale
    back = (g * scale).half().float() / scale
    lost_scaled = ((back == 0) & nonzero).float().sum().item() / nonzero.sum().item()
    sub_ok = torch.tensor(tiny, dtype=torch.float16).item() == tiny and torch.tensor(tiny / 4).half().item() == 0
    scaler16 = grad_scaler("16-mixed", torch.device("cpu"))
    c.check("fp16's smallest positive (subnormal) ≈ 6e-8 so small gradients underflow without loss scaling",
            sub_ok and lost16 > 0.05 and lost_scaled < lost16 / 10 and scaler16 is not None,
            f"2⁻²⁴ = {tiny:.3g} survives the cast to fp16, 2⁻²⁶ becomes 0; of {int(nonzero.sum()):,} real gradient "
            f"values (×1e-4, median |g| {g.abs().median():.1e}) {lost16:.1%} flush to zero in fp16, {lost_scaled:.2%} "
            f"with a ×2¹⁶ loss scale; trainwise's precision=16-mixed gets a {type(scaler16).__name__}")

    lostb = ((g.bfloat16() == 0) & nonzero).float().sum().item() / nonzero.sum().item()
    scaler_b = grad_scaler("bf16-mixed", torch.device("cpu"))
    c.check("bf16 has fp32's exponent range and needs no scaler",
            bf16.smallest_normal == f32.smallest_normal and abs(bf16.max / f32.max - 1) < 0.01 and lostb == 0
            and scaler_b is None,
            f"bf16 smallest normal {bf16.smallest_normal:.3g} = fp32's, max {bf16.max:.3g} vs {f32.max:.3g}; the "
            f"same gradients lose {lostb:.1%} in bf16 (only ~3 significant digits kept); trainwise's "
            f"precision=bf16-mixed uses no scaler ({scaler_b})")

    n = int(c.pick(1024, 512))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a32, b32 = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    a16, b16 = a32.bfloat16(), b32.bfloat16()

    def mm(a: torch.Tensor, b: torch.Tensor) -> None:
        a @ b
        if dev == "cuda":
            torch.cuda.synchronize()

    t32, t16 = c.timeit(lambda: mm(a32, b32), repeats=5), c.timeit(lambda: mm(a16, b16), repeats=5)
    speedup = t32 / t16
    where = torch.cuda.get_device_name() if dev == "cuda" else "this CPU (no CUDA device to measure)"
    c.check("2–8× faster matmuls on recent GPUs", dev == "cuda" and 2 <= speedup <= 8,
            f"{n}×{n} matmul on {where}: fp32 {t32 * 1e3:.2f} ms, bf16 {t16 * 1e3:.2f} ms ({speedup:.2f}×); "
            f"the claim is about GPU tensor cores", kind="gpu")


if __name__ == "__main__":
    main()
