"""Atomic file writes, so that nothing half-written is ever read back as complete.

``atomic_write(path, write)`` hands ``write`` a binary temporary file ``.<name>.tmp<pid>`` in the target's folder,
flushes and fsyncs it, renames it over ``path`` with ``os.replace`` and fsyncs the folder. A reader sees the old
file or the new one, never a part; a crash leaves only the temporary file, which is removed when ``write`` raises
and which no loader mistakes for a result (the writers' folders clear ``*.tmp*`` leftovers on restart).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, IO


def fsync_dir(folder) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_path(path) -> Path:
    """The temporary name ``atomic_write`` uses for ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write(path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a binary temp file, then fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def atomic_write_text(path, text: str) -> Path:
    """``atomic_write`` of UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))
