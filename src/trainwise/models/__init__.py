"""Model zoo. Importing this package registers every model (explicitly, so no name goes missing)."""

# imported for their registration side effect
from trainwise.models import autoencoder, bag, cnn, gan, mlp, rnn, seq2seq, simclr, tcn, transformer  # noqa: F401
from trainwise.models.registry import ModelSpec, create_model, get_spec, list_models, register

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register"]
