"""trainwise: the production PyTorch training loop at the cost of a hand-written one.

>>> import trainwise
>>> result = trainwise.fit(model, (x, y), epochs=10, run_dir=None)
"""

from trainwise.config import compose
from trainwise.errors import TrainwiseError
from trainwise.models import create_model, list_models
from trainwise.train.loop import FitResult, evaluate, fit
from trainwise.train.optim import scale_lr

__version__ = "0.1.0"

__all__ = ["FitResult", "TrainwiseError", "__version__", "compose", "create_model", "evaluate", "fit",
           "list_models", "scale_lr"]
