"""Export: ONNX (dynamo exporter), torch.export and TorchScript (deploy/export.py, `trainwise export`)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import _common as c
import numpy as np
import torch
from torch import nn

import trainwise
from trainwise.deploy.export import EXPORTERS

ORT_ONLY = """
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
shapes = [s.run(None, {"input": np.random.rand(b, 64).astype(np.float32)})[0].shape for b in (1, 37, 500)]
print(shapes, "torch" in sys.modules)
"""


class SignGate(nn.Module):
    """Data-dependent control flow: the branch taken depends on the input's values, not its shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return -x


def main() -> None:
    c.setup()
    pos, neg = torch.ones(3), -torch.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warns about the Python bool; TorchScript is deprecated in 2.13
        traced = torch.jit.trace(SignGate(), (pos,))
        scripted = torch.jit.script(SignGate())
    t_out, s_out, eager = traced(neg).tolist(), scripted(neg).tolist(), SignGate()(neg).tolist()
    c.check("tracing misses data-dependent control flow that scripting keeps", t_out != eager and s_out == eager,
            f"traced with a positive example, the traced module doubles a negative input too ({t_out}); the "
            f"scripted one keeps the branch ({s_out}, eager {eager})")

    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[64]).eval()
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "model.onnx"
        EXPORTERS["onnx"](model, torch.randn(2, 64), dest)  # trainwise's exporter: dynamo, dynamic batch dim
        proc = subprocess.run([sys.executable, "-c", ORT_ONLY, str(dest)], capture_output=True, text=True)
        out = proc.stdout.strip()
        import onnxruntime as ort

        sess = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
        xb = np.random.rand(37, 64).astype(np.float32)
        diff = float(np.abs(sess.run(None, {"input": xb})[0] - model(torch.from_numpy(xb)).detach().numpy()).max())
    ok = proc.returncode == 0 and out.endswith("False") and "(500, 10)" in out
    c.check("ONNX runs outside Python with dynamic batch", ok,
            f"the exported file, run by ONNX Runtime (C++ engine) in a process that never imports torch, gives "
            f"output shapes {out.rsplit(' ', 1)[0] if ok else proc.stderr[-200:]} for batches 1, 37, 500 from one "
            f"graph; max |diff| vs eager at batch 37 {diff:.1e}. (Here its Python bindings drive it; the same file "
            f"loads from C++, C#, Java or JS runtimes)")


if __name__ == "__main__":
    main()
