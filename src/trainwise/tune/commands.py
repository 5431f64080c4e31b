"""CLI commands for hyperparameter search (tune); torch is imported inside commands."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse exposes no public type
    """Register this family's subcommands on the ``trainwise`` parser."""
