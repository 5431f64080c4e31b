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
            t = c.rounds({"fp32": lambda m=model, i=inp: m(i), "int8": lambda m=qm, i=inp: m(i)},
                         number=int(c.pick(5, 2)))
        speed[name] = c.paired(t["int8"], t["fp32"], higher=False, ratio=True)
        c.say(f"{name}: fp32 {min(t['fp32']) * 1e3:.2f} ms, dynamic int8 {min(t['int8']) * 1e3:.2f} ms (fastest "
              f"round); speed-up {c.ratio_text(speed[name])}")
    # Suits Linear/LSTM-heavy models: both clearly faster (> 1.2×) with predictions kept; the CNN is context (its
    # convs stay fp32, so dynamic quantization has little to speed up there).
    verdict = c.combined([c.side(speed["mlp"], 0.2, ratio=True), c.side(speed["lstm"], 0.2, ratio=True),
                          1 if agree > 0.97 else -1], kind="cpu-speed")
    c.record("dynamic quantization suits Linear/LSTM-heavy models", verdict,
             f"dynamic int8 (weights int8, activations quantized on the fly) speed-up over fp32 on this CPU, 1 thread, "
             f"needed > 1.2× for MLP and LSTM: MLP {c.ratio_text(speed['mlp'])}, LSTM {c.ratio_text(speed['lstm'])}, "
             f"CNN {c.ratio_text(speed['cnn'])} (its convs are left in fp32); MLP predictions agree with fp32 on "
             f"{agree:.1%} of digits", f"{len(speed['mlp'].diff)} rounds")


if __name__ == "__main__":
    main()
