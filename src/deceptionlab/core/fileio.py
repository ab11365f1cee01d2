"""Atomic writes and content hashes: outputs are complete or absent, never half-written.

``atomic_file_set`` extends this to a stage's several files: inside it every ``atomic_write_*`` is
held back as a finished temporary file, and only when the block succeeds are they all renamed into
place, so a failure part-way leaves the previous set untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from deceptionlab.core.errors import DataError

# The active atomic_file_set's finished temporary files: {final path: temporary path}, in write order.
_PENDING: ContextVar[dict[Path, Path] | None] = ContextVar("deceptionlab_pending_writes", default=None)


def _write_error(path: Path, error: OSError) -> DataError:
    """One line for a write that the file system refused (a file where a folder must be, permissions, space)."""
    culprit = f": {error.filename}" if error.filename and Path(error.filename) != path else ""
    return DataError(f"{path}: cannot write it ({error.strerror or type(error).__name__}{culprit})")


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. a file where a parent folder must be
        raise _write_error(path, error) from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    _make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the result is an ordinary file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        pending = _PENDING.get()
        if pending is None:
            os.replace(tmp, path)
        else:  # renamed with the rest of the set
            if path in pending:
                pending.pop(path).unlink(missing_ok=True)
            pending[path] = Path(tmp)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _write_error(path, error) from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextmanager
def atomic_file_set() -> Iterator[None]:
    """Every ``atomic_write_*`` inside is renamed into place only when the block succeeds; if it raises,
    none is and the previous files stay as they were. Nested inside another set, it joins that one."""
    if _PENDING.get() is not None:
        yield
        return
    pending: dict[Path, Path] = {}
    token = _PENDING.set(pending)
    try:
        yield
        commit_file_set()
    finally:
        _PENDING.reset(token)
        for tmp in pending.values():  # what a failure left uncommitted
            tmp.unlink(missing_ok=True)


def commit_file_set() -> None:
    """Rename the active set's files into place now (for a step that must read them, such as logging them
    as artifacts); a no-op outside a set. Only renames remain, so the set lands whole or (after an OS
    error part-way) mostly; nothing is ever half-written."""
    pending = _PENDING.get()
    if not pending:
        return
    while pending:
        path, tmp = next(iter(pending.items()))
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise _write_error(path, error) from None
        del pending[path]


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path`` in one rename."""
    path = Path(path)
    _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError):
            raise _write_error(path, error) from None
        raise


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
