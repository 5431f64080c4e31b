"""What trainwise trusts and what it bounds (docs/security.md): one place for the rules every command shares.

* **Named outputs** (``report --out``, ``predict --out``, export/quantize folders): ``refuse_existing`` — an existing
  file is replaced only with ``--force``, and a directory never.
* **Writes inside a run directory**: ``check_inside`` — never through a symlink that leads out of the run directory.
* **Code from configs**: ``code_allowed`` — ``module:function`` data sources import user code only when the user opted
  in (``--allow-code`` on the command line, or calling the Python API, where the caller already runs code).
* **Resources**: ``load_yaml_bounded`` (size, nesting depth, alias count before anything is built) and
  ``check_memory`` (an estimate against available memory before a large allocation).

No torch import here: the CLI uses these before torch is loaded.
"""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from typing import Any

from trainwise.errors import TrainwiseError

# ---- named outputs ------------------------------------------------------------------------------------------------


def refuse_existing(path: str | Path, force: bool, what: str = "output", folder: bool = False) -> Path:
    """The one rule for every named output: refuse to replace an existing ``path`` unless ``force``. A file output
    never replaces a directory and a ``folder`` output (export/quantize) never replaces a file, ``--force`` or not."""
    p = Path(path)
    if p.is_dir() != folder and p.exists():
        kind = "a directory" if p.is_dir() else "a file"
        raise TrainwiseError(f"{what} '{p}' is {kind}; give " + ("a folder" if folder else "a file name")
                             + " that is not taken (nothing was changed)")
    if (p.exists() or p.is_symlink()) and not force:
        raise TrainwiseError(f"{what} '{p}' already exists; pass --force to replace it (or another --out)")
    return p


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


def write_error(path: str | Path, exc: OSError) -> TrainwiseError:
    """A failed write (disk full, read-only, immutable, quota) as one user-facing line."""
    return TrainwiseError(f"cannot write '{path}': {_reason(exc)}; free space or fix permissions, then run the command "
                          "again (nothing you had was changed)")


def _reason(exc: OSError) -> str:
    return {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted (immutable or protected)", errno.ENOTDIR: "not a folder",
            errno.EFBIG: "the file is larger than this process may write"}.get(exc.errno or 0, exc.strerror or str(exc))


# ---- run directories ----------------------------------------------------------------------------------------------


def check_inside(path: str | Path, root: str | Path, what: str = "file") -> Path:
    """Refuse to write ``path`` if it (or a folder on the way) is a symlink that leads outside ``root``: a run
    directory shared or downloaded by someone else must not make trainwise truncate a file elsewhere."""
    p, r = Path(path), Path(root)
    real_root = os.path.realpath(r)
    real = os.path.realpath(p)
    if os.path.commonpath([real_root, real]) != real_root:
        raise TrainwiseError(f"refusing to write {what} '{p}': it is a link to '{real}', outside the run directory "
                             f"'{r}'; replace the link with a regular file")
    return p


def check_creatable(path: str | Path, what: str) -> Path:
    """Refuse, before any work, a path to be created (a run directory, an output folder or file) below a *file*:
    ``--out notes.txt/sub`` would otherwise end in NotADirectoryError once the work is done."""
    p = Path(path)
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise TrainwiseError(f"{what} '{p}' cannot be created: '{parent}' is a file, not a folder; give a "
                                     "path under a folder")
            break
    return p


def check_writable(folder: str | Path, files: tuple[str, ...] = (), what: str = "run directory") -> None:
    """Refuse, before any work, a ``folder`` that cannot take new files (read-only, immutable, no permission) or
    whose existing ``files`` cannot be rewritten in place. ``os.access`` says yes to root even where the kernel will
    say no (``chattr +i``, a read-only mount), so each is tried for real: a probe file created and removed, each file
    opened for update without writing (neither content nor modification time changes)."""
    import tempfile

    d = Path(folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".trainwise-probe-", dir=d)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise TrainwiseError(f"{what} '{d}' is not writable ({_reason(exc)}); fix its permissions (or copy it "
                             "somewhere writable) and run the command again (nothing was changed)") from None
    for name in files:
        p = d / name
        if p.is_symlink() or not p.exists():
            continue  # links are check_inside's to judge; a missing file is created in the folder just probed
        if p.is_dir():
            raise TrainwiseError(f"'{p}' is a folder where a file belongs; move it away and run the command again "
                                 "(nothing was changed)")
        try:
            with open(p, "r+b"):
                pass
        except OSError as exc:
            raise TrainwiseError(f"'{p}' cannot be rewritten ({_reason(exc)}); fix its permissions and run the "
                                 "command again (nothing was changed)") from None


# ---- code from configs --------------------------------------------------------------------------------------------

ALLOW_CODE_ENV = "TRAINWISE_ALLOW_CODE"
_code_allowed: bool | None = None  # None: the Python API (the caller already runs code); the CLI sets it


def set_code_allowed(allowed: bool | None) -> tuple[bool | None, str | None]:
    """The CLI's ``--allow-code`` (None: back to the Python API's default). Also exported to the environment so
    worker processes (tune workers, recipes) inherit the same decision. Returns the previous setting for
    ``restore_code_allowed`` (``main()`` may be called in-process, e.g. by tests, then the Python API again)."""
    global _code_allowed
    previous = (_code_allowed, os.environ.get(ALLOW_CODE_ENV))
    _code_allowed = allowed
    if allowed:
        os.environ[ALLOW_CODE_ENV] = "1"
    return previous


def restore_code_allowed(previous: tuple[bool | None, str | None]) -> None:
    global _code_allowed
    _code_allowed, env = previous
    if env is None:
        os.environ.pop(ALLOW_CODE_ENV, None)
    else:
        os.environ[ALLOW_CODE_ENV] = env


def code_allowed() -> bool:
    if os.environ.get(ALLOW_CODE_ENV) == "1":
        return True
    return _code_allowed is None or _code_allowed


def require_code_allowed(what: str) -> None:
    if not code_allowed():
        raise TrainwiseError(f"{what} would import and run Python code named by the config; a config file alone may "
                             "not run code: pass --allow-code if you trust it")


# ---- bounded YAML -------------------------------------------------------------------------------------------------

YAML_MAX_BYTES = 1 << 20  # a config is a few KB; a megabyte is generous and still cheap to parse
YAML_MAX_DEPTH = 64
YAML_MAX_NODES = 100_000  # values after aliases are expanded: configs hold hundreds
YAML_MAX_ALIASES = 100  # anchors are rare in configs; a billion-laughs bomb needs thousands


def load_yaml_bounded(text: str, where: str) -> Any:
    """``yaml.safe_load`` with limits checked first on the event stream (iterative: no recursion, no objects built),
    so an alias bomb or 20,000-deep nesting is refused in one line instead of exhausting memory or the stack."""
    import yaml

    if len(text) > YAML_MAX_BYTES:
        raise TrainwiseError(f"{where} is {len(text):,} characters; configs are limited to {YAML_MAX_BYTES:,} "
                             "(is this the right file?)")
    # Each open collection counts the nodes it holds once aliases are expanded (an alias counts as its anchor's
    # whole subtree): nine anchors each repeating the previous one nine times are 72 aliases but 387 million nodes.
    stack: list[list[Any]] = [[0, None]]  # [expanded node count, anchor name] per open collection
    sizes: dict[str, int] = {}
    aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([1, event.anchor])
            if len(stack) - 1 > YAML_MAX_DEPTH:
                raise TrainwiseError(f"{where} nests deeper than {YAML_MAX_DEPTH} levels; flatten it")
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            n, anchor = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            n, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > YAML_MAX_ALIASES:
                raise TrainwiseError(f"{where} uses more than {YAML_MAX_ALIASES} YAML aliases (*name); write the "
                                     "values out instead")
            if any(open_anchor == event.anchor for _, open_anchor in stack):  # `&a [*a]`: a value holding
                raise TrainwiseError(f"{where} has a YAML alias (*{event.anchor}) inside its own anchor, a "  # itself
                                     "value that contains itself; write the values out instead")
            n, anchor = sizes.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            sizes[anchor] = n
        stack[-1][0] += n
        if stack[-1][0] > YAML_MAX_NODES:
            raise TrainwiseError(f"{where} expands to more than {YAML_MAX_NODES:,} values (YAML aliases repeating "
                                 "aliases?); write the config out plainly")
    return yaml.safe_load(text)


# ---- numbers and memory -------------------------------------------------------------------------------------------

SEED_MAX = 2**32 - 1  # numpy's legacy RandomState and many samplers take 32-bit seeds; torch takes 64


def check_finite(value: Any, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise TrainwiseError(f"{key}={value} is not a finite number; give a finite value")


def available_memory() -> int | None:
    """Bytes of memory available to this process now (MemAvailable, capped by a cgroup limit), or None."""
    avail: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    for cg in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(cg).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and avail is not None:
            avail = min(avail, int(raw))
    return avail


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_memory(need: int, what: str, fix: str) -> None:
    """Refuse before allocating ``need`` bytes when that is more than the memory available."""
    avail = available_memory()
    if avail is not None and need > avail:
        raise TrainwiseError(f"{what} needs ≈ {gb(need)} but only {gb(avail)} of memory is available; {fix}")
