"""The training loop and the step machinery every paradigm shares."""
