"""Tasks: what a model's output means — the loss, the metrics over a whole split, and output checks."""

from trainwise.tasks.base import Task, make_task
from trainwise.tasks.classification import Classification
from trainwise.tasks.regression import Regression

__all__ = ["Classification", "Regression", "Task", "make_task"]
