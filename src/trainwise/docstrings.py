"""``trainwise data docstrings FILE.csv``: a real text-classification corpus that exists on every machine with the
trainwise environment and needs no download — the docstrings of the installed scientific libraries, labelled by
library.

For each library (numpy, scipy, torch, pandas, sklearn, matplotlib) every ``.py`` file of the installed package is
parsed with :mod:`ast` — nothing is imported or executed — in sorted path order, skipping test folders. Each public
function, class and method with a docstring gives one row: the docstring's **first paragraph** (its summary, up to
the first blank line), whitespace collapsed, kept when it is 20–400 characters and at least 4 words. The parameter
sections are left out on purpose: their formatting (numpydoc's ``Parameters\\n----------`` against Google style's
``Args:``) would give the library away without reading the prose. Texts that occur in two libraries are dropped
(ambiguous), duplicates within one library are kept once, and at most ``--per-library`` rows per library (default
1500) are kept, chosen by a hash of the text — deterministic, and the same rows whatever the file order. Rows are
written sorted by that hash. Columns: ``text``, ``library``, ``name`` (the function or class name).

The corpus depends on the installed versions (torch is pinned; the rest come from the constraints at install time);
the command prints them, and ``docs/presets.md`` records the ones its numbers were measured with.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

from trainwise.errors import TrainwiseError

LIBRARIES = ("numpy", "scipy", "torch", "pandas", "sklearn", "matplotlib")
DISTRIBUTIONS = {"sklearn": "scikit-learn"}
SKIP_PARTS = {"tests", "test", "testing", "_vendor", "vendored", "_vendored"}


def _summary(doc: str) -> str | None:
    first = doc.strip().split("\n\n")[0]
    text = " ".join(first.split())
    if not 20 <= len(text) <= 400 or len(text.split()) < 4:
        return None
    return text


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # a top-level name: found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise TrainwiseError(f"library '{name}' is not installed; the docstrings corpus needs {', '.join(LIBRARIES)}")
    return Path(next(iter(spec.submodule_search_locations)))


def library_docstrings(name: str) -> list[tuple[str, str]]:
    """(summary, object name) for every public documented function/class/method of an installed library."""
    root = _package_dir(name)
    out: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if SKIP_PARTS & set(rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                    not node.name.startswith("_"):
                doc = ast.get_docstring(node)
                text = _summary(doc) if doc else None
                if text:
                    out.append((text, node.name))
    return out


def _rank(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build(dest: str | Path, per_library: int = 1500, libraries: tuple[str, ...] = LIBRARIES) -> dict[str, int]:
    """Write the corpus CSV; returns rows per library. ``dest`` must not exist."""
    p = Path(dest)
    if p.exists():
        raise TrainwiseError(f"'{p}' already exists; give a new FILE.csv")
    if p.suffix.lower() != ".csv":
        raise TrainwiseError(f"'{p}' must end in .csv")
    found: dict[str, dict[str, str]] = {}
    owners: dict[str, set[str]] = {}
    for lib in libraries:
        rows: dict[str, str] = {}
        for text, obj in library_docstrings(lib):
            rows.setdefault(text, obj)
            owners.setdefault(text, set()).add(lib)
        found[lib] = rows
    out: list[tuple[str, str, str]] = []
    counts = {}
    for lib, rows in found.items():
        unique = sorted((t for t in rows if len(owners[t]) == 1), key=_rank)[:per_library]
        counts[lib] = len(unique)
        out += [(t, lib, rows[t]) for t in unique]
    out.sort(key=lambda r: _rank(r[0]))
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "library", "name"])
        w.writerows(out)
    return counts


def versions() -> dict[str, str]:
    return {lib: importlib.metadata.version(DISTRIBUTIONS.get(lib, lib)) for lib in LIBRARIES}
