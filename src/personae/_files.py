"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from personae.errors import InputError


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *,
                 mode: int | None = None) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then move it into place.

    Writes through a symlink rather than over it. The file gets ``mode``, or the mode a
    plain ``open()`` would give it (mkstemp alone would leave it private, 0600). A failure
    leaves any previous file as it was and raises `InputError` naming the path.

    >>> import tempfile
    >>> p = atomic_write(Path(tempfile.mkdtemp()) / "a.txt", "hi")
    >>> p.read_text()
    'hi'
    """
    target = Path(path).resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"{target}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
