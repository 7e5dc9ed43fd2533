"""Atomic file writes: a temporary file in the destination folder, then a rename.

A reader (or a crash) never sees a half-written file, and an existing file is replaced only
once the new one is complete. New files get the usual permissions (0666 minus the umask).
A write that fails (read-only folder, full disk, a parent that is a file) removes its temporary
file and raises :class:`~polyamp.errors.OutputError`, one line naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from polyamp.errors import OutputError

_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
    errno.ENOTDIR: "a parent of the path is a file, not a folder",
}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_error(path: str | os.PathLike[str], error: BaseException, what: str = "") -> OutputError:
    """A one-line :class:`OutputError` for a failed write of ``path`` (``what``: e.g. ``"MIDI file"``)."""
    if isinstance(error, OutputError):
        if not what or error.__cause__ is None:
            return error
        error = error.__cause__  # name the kind of file: re-word the original failure
    code = getattr(error, "errno", None)
    reason = getattr(error, "strerror", None) or _reason_of(error)
    if not isinstance(code, int):  # TensorFlow's errors carry the reason only as text
        code = next((number for number in _HINTS if os.strerror(number) in reason), None)
    hint = _HINTS.get(code) if code is not None else None
    detail = f"{reason} ({hint})" if hint and hint.lower() not in reason.lower() else reason
    return OutputError(f"cannot write {what + ' ' if what else ''}{os.fspath(path)}: {detail}", error)


def _reason_of(error: BaseException) -> str:
    """The operating system's reason in an error's text; for a TensorFlow error (``{{function_node ...}}
    /path/file.tempstate123; No space left on device [Op:SaveV2]``) the part after the last ``;``."""
    text = str(getattr(error, "message", "") or error).strip()
    text = re.sub(r"\{\{[^}]*\}\}", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\]", "", text)
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    return first.rsplit("; ", 1)[-1].strip() or type(error).__name__


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yields a binary stream; on a clean exit its contents replace ``path``, else nothing changes.

    An OSError (from creating the folder or the temporary file, writing, or renaming) becomes an
    :class:`OutputError`; the temporary file is removed whatever fails.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise output_error(path, error) from error
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        os.chmod(temp_name, 0o666 & ~_umask())
        os.replace(temp_name, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        if isinstance(error, OSError):
            raise output_error(path, error) from error
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically; returns the path."""
    with atomic_output(path) as stream:
        stream.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Writes UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))
