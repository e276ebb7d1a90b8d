"""Writing files so that nothing half-written ever sits under a final name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OptionError


def _umask() -> int:
    # os.umask can only be read by setting it; done once per call, never at import.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o666) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is flushed to disk and renamed to ``path``.

    On any error (a full disk, an interrupt) the temporary file is removed and ``path`` is
    left as it was. ``mode`` is applied through the umask, as ``open`` would.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_path, mode & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


def input_file_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` cannot hold ``kind`` ("an image", "a video") whatever its format: it is missing,
    a folder or empty; None when it is none of these. Images and videos say these the same way."""
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return f"is a folder, not {kind}"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return None


def check_output_folder(path: str | os.PathLike, option: str) -> None:
    """Refuse an output folder that cannot be one before any work is done: ``path``, or the
    nearest of its parents that exists, is a file. ``option`` names where it came from ("-o")."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or existing.is_dir():
        return
    if existing == path:
        raise OptionError(f"{option} {path}: exists and is not a folder")
    raise OptionError(f"{option} {path}: cannot be created, {existing} is a file, not a folder")
