"""Model zoo. Importing this package registers every model (explicitly, so no name goes missing)."""

from trainwise.models import cnn, mlp  # noqa: F401  (registration side effect)
from trainwise.models.registry import ModelSpec, create_model, get_spec, list_models, register

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register"]
