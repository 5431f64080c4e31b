"""trainwise: the production PyTorch training loop at the cost of a hand-written one.

>>> import trainwise
>>> result = trainwise.fit(model, (x, y), epochs=10, run_dir=None)

Names are imported lazily (PEP 562) so that ``trainwise --help`` and config errors answer without importing torch.
"""

from __future__ import annotations

import importlib
import os

# Bit-exact reproducibility on CPUs: MKL otherwise picks its thread count and code path per call depending on load
# (e.g. DataLoader workers competing for cores), which changes float summation order run to run. Measured here:
# digits MLP with 2 DataLoader workers gave 2 different final weights in 5 runs without these, 1 in 6 with them.
# Set before torch loads MKL; users can override by exporting their own values.
os.environ.setdefault("MKL_CBWR", "AUTO")
os.environ.setdefault("MKL_DYNAMIC", "FALSE")
from typing import TYPE_CHECKING, Any

from trainwise.errors import TrainingInterrupted, TrainwiseError

__version__ = "0.1.0"

_LAZY = {
    "compose": "trainwise.config",
    "create_model": "trainwise.models",
    "list_models": "trainwise.models",
    "FitResult": "trainwise.train.loop",
    "evaluate": "trainwise.train.loop",
    "fit": "trainwise.train.loop",
    "scale_lr": "trainwise.train.optim",
    "runner": "trainwise.runner",
}

if TYPE_CHECKING:
    from trainwise import runner
    from trainwise.config import compose
    from trainwise.models import create_model, list_models
    from trainwise.train.loop import FitResult, evaluate, fit
    from trainwise.train.optim import scale_lr


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "runner" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trainwise' has no attribute {name!r}")


__all__ = ["FitResult", "TrainingInterrupted", "TrainwiseError", "__version__", "compose", "create_model",
           "evaluate", "fit", "list_models", "runner", "scale_lr"]
