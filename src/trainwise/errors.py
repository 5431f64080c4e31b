"""Errors a user can cause. The CLI prints them as one ``error: …`` line and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TrainwiseError(Exception):
    """A mistake in the user's input: the message names the problem and the fix."""


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived during training: a checkpoint was saved; the message says how to resume."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
