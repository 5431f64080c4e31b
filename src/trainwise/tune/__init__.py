"""Hyperparameter search with Optuna: search spaces from the config, pruning from inside the loop."""
