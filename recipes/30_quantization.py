"""Quantization: dynamic / static PTQ / QAT (deploy/quantize.py, `trainwise quantize`)."""

from __future__ import annotations

import io

import _common as c
import torch

import trainwise
from trainwise.deploy.quantize import torch_dynamic


def nbytes(model: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def main() -> None:
    c.setup()
    x = torch.randn(10000) * 3
    scale = float((x.max() - x.min()) / 255)
    zp = int(round(-x.min().item() / scale)) - 128
    q = torch.quantize_per_tensor(x, scale, zp, torch.qint8)
    manual = scale * (q.int_repr().float() - zp)
    err = (q.dequantize() - manual).abs().max().item()
    rt = (q.dequantize() - x).abs().max().item()
    c.check("x ≈ scale·(q − zero_point)", err < 1e-6 and rt <= scale / 2 + 1e-6,
            f"int8 per-tensor: dequantize() equals scale·(q − zero_point) within {err:.1e} (scale {scale:.4f}, "
            f"zero_point {zp}); round-trip error ≤ {rt:.4f} = scale/2 at most")

    xs, ys = c.digits()
    torch.manual_seed(0)
    mlp = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[512, 512])
    res = trainwise.fit(mlp, (xs, ys), epochs=int(c.pick(5, 2)), run_dir=None)
    fp32 = res.model.eval()
    int8 = torch_dynamic(fp32)  # what `trainwise quantize --method dynamic` builds
    ratio = nbytes(fp32) / nbytes(int8)
    c.check("int8 is ~4× smaller", 3.5 <= ratio <= 4.2,
            f"MLP 64→512→512→10 state: {nbytes(fp32):,} bytes fp32 vs {nbytes(int8):,} int8 dynamic ({ratio:.2f}×; "
            f"scales, zero points and fp32 biases keep it under 4)")

    xt = torch.tensor(xs)
    with torch.inference_mode():
        agree = (fp32(xt).argmax(1) == int8(xt).argmax(1)).float().mean().item()
    batch = xt[:256]
    lstm = trainwise.create_model("rnn", in_shape=(20, 64), out_dim=10, cell="lstm", hidden=256).eval()
    cnn = trainwise.create_model("cnn", in_shape=(1, 8, 8), out_dim=10, width=32).eval()
    seq, img = torch.randn(64, 20, 64), xt[:256].view(-1, 1, 8, 8)
    speed = {}
    for name, model, inp in (("mlp", fp32, batch), ("lstm", lstm, seq), ("cnn", cnn, img)):
        qm = torch_dynamic(model)
        with torch.inference_mode():
            t_f = c.timeit(lambda m=model, i=inp: m(i), repeats=int(c.pick(7, 3)), number=int(c.pick(5, 2)))
            t_q = c.timeit(lambda m=qm, i=inp: m(i), repeats=int(c.pick(7, 3)), number=int(c.pick(5, 2)))
        speed[name] = t_f / t_q
        c.say(f"{name}: fp32 {t_f * 1e3:.2f} ms, dynamic int8 {t_q * 1e3:.2f} ms ({t_f / t_q:.2f}×)")
    ok = speed["mlp"] > 1.2 and speed["lstm"] > 1.2 and speed["cnn"] < 1.1 and agree > 0.97
    c.check("dynamic quantization suits Linear/LSTM-heavy models", ok,
            f"dynamic int8 (weights int8, activations quantized on the fly) speedup on this CPU, 1 thread: MLP "
            f"{speed['mlp']:.2f}×, LSTM {speed['lstm']:.2f}×, CNN {speed['cnn']:.2f}× (its convs are left in fp32); "
            f"MLP predictions agree with fp32 on {agree:.1%} of digits", kind="cpu-speed")


if __name__ == "__main__":
    main()
