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
        return "a broken symbolic link (or a loop of them)" if path.is_symlink() else "no such file"
    if path.is_dir():
        return f"is a folder, not {kind}"
    if not path.is_file():
        # A FIFO would block the read forever; a device or socket is no photo either.
        return f"not a regular file (a pipe, socket or device), not {kind}"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return None


def nearest_existing(path: str | os.PathLike) -> Path | None:
    """``path`` if it exists, else the nearest of its parents that does (None: none does)."""
    path = Path(path)
    return next((p for p in (path, *path.parents) if p.exists()), None)


def check_output_folder(path: str | os.PathLike, option: str) -> None:
    """Refuse an output folder that cannot be one before any work is done: ``path``, or the
    nearest of its parents that exists, is a file. ``option`` names where it came from ("-o")."""
    if not str(path):
        raise OptionError(f"{option}: an empty path (an unset shell variable?); name a folder")
    path = Path(path)
    existing = nearest_existing(path)
    if existing is None or existing.is_dir():
        return
    if existing == path:
        raise OptionError(f"{option} {path}: exists and is not a folder")
    raise OptionError(f"{option} {path}: cannot be created, {existing} is a file, not a folder")


def check_writable_folder(path: str | os.PathLike, option: str) -> None:
    """Write a scratch file in the output folder ``path`` (or, while it does not exist yet, in the
    nearest folder above it, where it will be created), so that a folder the run cannot write
    into is said once, before any work, in the user's own terms (permission bits say nothing of
    a read-only disk or an immutable folder, nor to root). Nothing is created or left behind."""
    path = Path(path)
    existing = nearest_existing(path) or Path(".")
    try:
        fd, scratch = tempfile.mkstemp(prefix=".colorgan-write-check.", suffix=".check", dir=existing)
        os.close(fd)
        os.unlink(scratch)
    except OSError as error:
        raise OptionError(f"{option} {path}: cannot write there ({error.strerror or error})") from None


def check_output_file(path: str | os.PathLike, option: str, *, protected: dict[Path, str], overwrite: bool = False,
                      replaceable: Path | None = None) -> Path:
    """Refuse an output file before any work: a folder, one under a file, one of ``protected``
    ({path: what it is, e.g. "the input photo"}), or an existing file unless ``overwrite`` or it
    is ``replaceable`` (a file the command is meant to update, such as the hints it read)."""
    if not str(path):
        raise OptionError(f"{option}: an empty path; name a file")
    path = Path(path)
    if path.is_dir():
        raise OptionError(f"{option} {path}: is a folder; name a file")
    if not path.exists():
        check_output_folder(path, option)  # a parent that is a file: "cannot be created, X is a file"
    for other, what in protected.items():
        if _same_file(path, other):
            raise OptionError(f"{option} {path}: is {what}; it would be overwritten, name another file")
    if path.exists() and not overwrite and not (replaceable is not None and _same_file(path, replaceable)):
        raise OptionError(f"{option} {path}: exists (pass --overwrite to replace it)")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b) or os.path.abspath(a) == os.path.abspath(b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with every symbolic link resolved, as far as they go: a loop or a broken link
    resolves to where it stops instead of raising (Path.resolve raises RuntimeError on a loop),
    so that a bad file named among good ones is that file's error, not the whole run's."""
    return Path(os.path.realpath(path))
