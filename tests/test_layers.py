"""The package's import layers: no import cycles, and no lower layer importing a higher one.

Every module under ``src/trainwise`` is parsed with :mod:`ast` and ALL of its internal imports are collected — at
module level, inside functions (deferred imports), under ``if TYPE_CHECKING:``, and relative ones (``from . import
x``). ``from trainwise.pkg import name`` counts as an import of ``trainwise.pkg.name`` when that is a module, else of
``trainwise.pkg``.

The layers, lowest first (a module may import its own layer and the layers below it, never a layer above):

0. **foundation** — ``errors``, ``safety``, ``progress``, ``presets``, ``run.paths``, ``run.plots``, ``run.jsonl``: no
   knowledge of data, models or training.
1. **data and models** — ``data/`` (sources, splits, loaders, images, npy), ``models/`` (the registry and the zoo),
   ``run.rundir`` (reading and writing a run directory's files).
2. **config** — ``schema`` (every key declared once: type, default, choices, range, doc), ``config`` (composes and
   validates configs; knows the data sources), ``config_docs`` (docs/config.md from the schema).
3. **build and reopen** — ``build`` (a config's data splits and untrained model), ``reopen`` (a finished run's
   config, preprocessing and weights, back in an eval-mode model), and ``data.text`` (the text source: splits,
   tokenizer and cache from a config's ``data`` section, so it reads the config like ``build`` does).
4. **training parts** — ``train/`` except the loop (precision, optim, schedule, step, checkpoint, state, augment,
   distributed), the doctor that runs inside the loop (``doctor/``: preflight, monitors, diagnose, findings, crash,
   recorder), and the run bookkeeping the loop writes (``run.runs``, ``run.tracking``).
5. **tasks** — ``tasks/`` (loss + metrics per paradigm, and the task registry ``make_task``).
6. **loop** — ``train.components`` (fit's build phase: components and policies from the config), ``train.loop``
   (the epoch, its end, the finish) and ``train.profile``.
7. **runner and API** — ``runner`` (train/resume/evaluate a config or run) and the package itself (``trainwise.fit``).
8. **commands** — everything built on finished runs or on the runner: ``deploy/``, ``checkup/`` (report, lr-find,
   overfit-batch, suite, bugsuite), ``tune/``, ``distill``, ``run.compare``, ``run.commands``, ``data_cmd``,
   ``recipes_cmd``, ``cli_common`` (argparse helpers the command modules share).
9. **CLI** — ``cli`` and ``__main__``.
"""

from __future__ import annotations

import ast
import fnmatch
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "trainwise"

# (layer, module patterns); fnmatch patterns, the most specific (longest) matching pattern decides.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["trainwise.errors", "trainwise.safety", "trainwise.progress", "trainwise.presets",
                    "trainwise.presets.*", "trainwise.run", "trainwise.run.paths", "trainwise.run.plots", "trainwise.run.jsonl"]),
    ("data and models", ["trainwise.data", "trainwise.data.*", "trainwise.models", "trainwise.models.*",
                         "trainwise.run.rundir"]),
    ("config", ["trainwise.config", "trainwise.schema", "trainwise.config_docs"]),
    ("build and reopen", ["trainwise.build", "trainwise.reopen", "trainwise.data.text"]),
    ("training parts", ["trainwise.train", "trainwise.train.*", "trainwise.doctor", "trainwise.doctor.*",
                        "trainwise.run.runs", "trainwise.run.tracking"]),
    ("tasks", ["trainwise.tasks", "trainwise.tasks.*"]),
    ("loop", ["trainwise.train.loop", "trainwise.train.components", "trainwise.train.profile"]),
    ("runner and API", ["trainwise.runner", "trainwise"]),
    ("commands", ["trainwise.deploy", "trainwise.deploy.*", "trainwise.checkup", "trainwise.checkup.*",
                  "trainwise.tune", "trainwise.tune.*", "trainwise.distill", "trainwise.run.compare",
                  "trainwise.run.commands", "trainwise.data_cmd", "trainwise.docstrings", "trainwise.recipes_cmd",
                  "trainwise.cli_common"]),
    ("CLI", ["trainwise.cli", "trainwise.__main__"]),
]

# Imports the check tolerates for now. Each entry is (importer, imported) and must say why; delete it when the
# import goes away (the test fails on entries that no longer match an import, so the list cannot go stale).
ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def _imports(modules: dict[str, tuple[Path, bool]]) -> tuple[dict[str, set[str]], int, int]:
    """module -> internal modules it imports; plus (import statements, function-local ones)."""
    edges: dict[str, set[str]] = defaultdict(set)
    total = local = 0
    for name, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        in_function: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                in_function.update(id(n) for n in ast.walk(node) if n is not node)
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    pkg = ".".join(base + ([node.module] if node.module else []))
                else:
                    pkg = node.module or ""
                targets = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in modules else pkg for a in node.names]
            targets = [t for t in targets if t.split(".")[0] == "trainwise"]
            if not targets:
                continue
            total += 1
            local += id(node) in in_function
            for t in targets:
                while t not in modules and "." in t:  # `import trainwise.x.y` / a name inside a module
                    t = t.rsplit(".", 1)[0]
                if t != name:
                    edges[name].add(t)
    return edges, total, local


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (specificity, layer)
    for i, (_, patterns) in enumerate(LAYERS):
        for p in patterns:
            if fnmatch.fnmatchcase(module, p):
                spec = len(p.replace("*", ""))
                if best is None or spec > best[0]:
                    best = (spec, i)
    return None if best is None else best[1]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    nodes = sorted(set(edges) | {t for ts in edges.values() for t in ts})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _graph() -> dict[str, set[str]]:
    edges, _, _ = _imports(_modules())
    return edges


def test_the_scanner_sees_deferred_relative_and_type_checking_imports():
    modules = _modules()
    assert "trainwise.train.loop" in modules and "trainwise" in modules
    edges = _graph()
    assert "trainwise.cli" in edges["trainwise.__main__"]
    assert "trainwise.runner" in edges["trainwise"]  # under `if TYPE_CHECKING:`
    assert ("trainwise.train.loop", "trainwise.train.profile") in {(a, b) for a in edges for b in edges[a]}


def test_every_module_has_a_layer():
    missing = [m for m in _modules() if _layer(m) is None]
    assert not missing, f"place these modules in LAYERS (tests/test_layers.py): {missing}"


def test_no_import_cycles():
    edges = _graph()
    pruned = {a: {b for b in bs if (a, b) not in ALLOWED} for a, bs in edges.items()}
    cycles = _cycles(pruned)
    assert not cycles, "import cycles among src/trainwise modules:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_lower_layer_imports_a_higher_one():
    bad = []
    for a, bs in sorted(_graph().items()):
        for b in sorted(bs):
            la, lb = _layer(a), _layer(b)
            if la is not None and lb is not None and lb > la and (a, b) not in ALLOWED:
                bad.append(f"{a} ({LAYERS[la][0]}) imports {b} ({LAYERS[lb][0]})")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_allow_list_entries_are_still_needed():
    edges = _graph()
    stale = [pair for pair in ALLOWED if pair[1] not in edges.get(pair[0], set())]
    assert not stale, f"remove these ALLOWED entries from tests/test_layers.py, the import is gone: {stale}"


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    bad = []
    for name, (path, _) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("trainwise")):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{name}:{node.lineno} imports {node.module}.{a.name}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)
