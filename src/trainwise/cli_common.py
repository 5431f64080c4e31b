"""Argument helpers shared by the ``trainwise`` command modules (``cli`` and the command families it registers)."""

from __future__ import annotations

import argparse

from trainwise.errors import TrainwiseError


def allow_intermixed(parser: argparse.ArgumentParser) -> None:
    """Let ``train CONFIG.yaml --preset NAME key=value --quiet`` (and tune, distill, …) parse: plain argparse rejects positionals split
    by an option ("unrecognized arguments"); ``parse_known_intermixed_args`` accepts them."""

    class Intermixed(type(parser)):  # type: ignore[misc]
        _busy = False  # Python ≤ 3.12 implements intermixed parsing by calling parse_known_args itself

        def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN202 - argparse's signature
            if self._busy:
                return super().parse_known_args(args, namespace)
            self._busy = True
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._busy = False

    parser.__class__ = Intermixed


def split_train_args(items: list[str]) -> tuple[str | None, list[str]]:
    """``[CONFIG.yaml] [key=value ...]`` → (config file or None, overrides)."""
    config, overrides = None, []
    for item in items:
        if "=" in item:
            overrides.append(item)
        elif config is None:
            config = item
        else:
            raise TrainwiseError(f"unexpected argument '{item}': give at most one CONFIG.yaml, then key=value overrides")
    return config, overrides
