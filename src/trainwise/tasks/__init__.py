"""Tasks: what a model's output means — the loss, the metrics over a whole split, and output checks.

Importing this package registers every task and paradigm (explicitly, so no name goes missing).
"""

# imported for their registration side effect
from trainwise.tasks import (  # noqa: F401
    autoencoding,
    contrastive,
    distillation,
    gan,
    multilabel,
    seq2seq,
)
from trainwise.tasks.base import Task, minimize
from trainwise.tasks.classification import Classification
from trainwise.tasks.registry import TaskArgs, make_task, register_paradigm, register_task
from trainwise.tasks.regression import Regression

__all__ = ["Classification", "Regression", "Task", "TaskArgs", "make_task", "minimize",
           "register_paradigm", "register_task"]
