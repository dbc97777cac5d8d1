"""Writing without losing anything: every nmn writer stages its output next to the target and renames it into place
only after every check passed.

Two tools, used by ``save_model``/``export``, ``nmn convert`` and the scripts that write files:

* :func:`write_bytes` - one file, written to a hidden temporary sibling, flushed, then ``os.replace``-d over the
  target (a reader sees the old file or the new one, never half of one).
* :class:`Stage` - several outputs (files or folders, e.g. ``model.pt`` + ``model.onnx`` + ``model_loader.py``,
  or a SavedModel folder) built in a hidden temporary sibling folder; :meth:`Stage.commit` moves them into place,
  and if anything fails while doing so, puts back what was there before. Leaving the ``with`` block without a
  commit (an error, ``KeyboardInterrupt``, ``SystemExit``) removes the staging folder: nothing new is left and
  nothing existing was changed.

Modes follow the umask, as a plain ``open()``/``mkdir`` would give (``tempfile`` creates 0600 files and 0700
folders; they are widened to ``0666 & ~umask`` / ``0777 & ~umask`` before they are renamed into place).

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> target = os.path.join(folder, "a.bin")
    >>> _ = write_bytes(target, b"one")
    >>> write_bytes(target, b"two", overwrite=False)
    Traceback (most recent call last):
    ...
    FileExistsError: a.bin exists; pass overwrite=True (nmn convert: --overwrite) to replace it
    >>> _ = write_bytes(target, b"two")
    >>> open(target, "rb").read(), sorted(os.listdir(folder))
    (b'two', ['a.bin'])
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

_UMASK_LOCK = threading.Lock()
TMP_TAG = ".nmn-tmp-"


def umask() -> int:
    """The process's umask (read without changing it where the OS tells it, else set and restored at once)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _apply_umask_modes(path: Path) -> None:
    """Give a ``tempfile``-made file or folder the mode a plain ``open()``/``mkdir`` would have given it."""
    mask = umask()
    if path.is_dir() and not path.is_symlink():
        os.chmod(path, 0o777 & ~mask)
    elif path.is_file() and not path.is_symlink():
        os.chmod(path, (0o666 & ~mask) | (stat.S_IMODE(path.stat().st_mode) & 0o111 & ~mask))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _signals_blocked:
    """Hold SIGINT/SIGTERM (main thread, POSIX) while a rollback runs; they are delivered right after it."""

    def __enter__(self):
        self.old = None
        if hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread():
            self.old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        try:
            path.unlink()
        except OSError:
            pass


def write_bytes(path: str | os.PathLike, data: bytes | Callable[[object], None], *, overwrite: bool = True) -> Path:
    """Write ``data`` (bytes, or a function that writes into a binary file object) to ``path`` atomically.

    Args:
        path: the target file; its folder is created if missing.
        data: the bytes, or ``writer(file)`` that writes them.
        overwrite: replace an existing file (default, as ``save_model`` always did); False raises
            ``FileExistsError`` naming the file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> import os, tempfile
        >>> p = write_bytes(os.path.join(tempfile.mkdtemp(), "x", "y.txt"), lambda f: f.write(b"hi"))
        >>> p.read_bytes(), oct(p.stat().st_mode & 0o777) == oct(0o666 & ~umask())
        (b'hi', True)
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a file path")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{path.name} exists; pass overwrite=True (nmn convert: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_TAG}", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _apply_umask_modes(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


class Stage:
    """Build outputs in a hidden staging folder beside their targets; move them into place on :meth:`commit`.

    Args:
        folder: where the outputs go (all targets are entries of this folder).
        overwrite: replace existing targets; without it an existing target is an error naming it.
        may_replace: ``may_replace(existing_path) -> reason or None``; a reason refuses to replace that target
            even with ``overwrite`` (e.g. a folder holding files this tool did not write).

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with Stage(folder) as stage:
        ...     _ = stage.path("w.txt").write_text("weights")
        ...     stage.path("saved").mkdir()
        ...     _ = stage.commit()
        >>> sorted(os.listdir(folder))
        ['saved', 'w.txt']
        >>> with Stage(folder) as stage:
        ...     _ = stage.path("w.txt").write_text("new")
        ...     raise RuntimeError("a check failed")
        Traceback (most recent call last):
        ...
        RuntimeError: a check failed
        >>> sorted(os.listdir(folder)), open(os.path.join(folder, "w.txt")).read()
        (['saved', 'w.txt'], 'weights')
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        overwrite: bool = False,
        may_replace: Callable[[Path], str | None] | None = None,
    ):
        self.folder = Path(folder)
        self.overwrite = overwrite
        self.may_replace = may_replace
        self.root: Path | None = None
        self._names: list[str] = []
        self.committed = False

    # --------------------------------------------------------------------------------------------- staging
    def __enter__(self) -> Stage:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f".{TMP_TAG.strip('.-')}-", dir=self.folder))
        return self

    def path(self, name: str) -> Path:
        """The staged location of the output ``name`` (an entry of :attr:`folder`)."""
        if os.sep in name or name in ("", ".", ".."):
            raise ValueError(f"output name {name!r} must be a plain file or folder name")
        if name not in self._names:
            self._names.append(name)
        return self.root / name

    @property
    def targets(self) -> list[Path]:
        """The final locations, in the order their names were first asked for."""
        return [self.folder / n for n in self._names]

    def check_targets(self, names: Iterable[str] | None = None) -> None:
        """Raise ``FileExistsError``/``PermissionError`` now if a target may not be (re)placed (also run by
        :meth:`commit`; call it early to fail before expensive work)."""
        for name in self._names if names is None else names:
            target = self.folder / name
            if not (target.exists() or target.is_symlink()):
                continue
            if self.may_replace is not None:
                reason = self.may_replace(target)
                if reason:
                    raise PermissionError(f"{target}: {reason}; not replaced (even with --overwrite)")
            if not self.overwrite:
                raise FileExistsError(f"{target} exists; pass --overwrite to replace it")

    # --------------------------------------------------------------------------------------------- commit
    def commit(self) -> list[Path]:
        """Move every staged output into place; on any failure put every target back as it was, and raise."""
        self.check_targets()
        missing = [n for n in self._names if not (self.root / n).exists()]
        if missing:
            raise FileNotFoundError(f"nothing was written for {missing}")
        for name in self._names:
            for p in [self.root / name, *((self.root / name).rglob("*") if (self.root / name).is_dir() else [])]:
                if p.is_dir():
                    _apply_umask_modes(p)
        backup = self.root / ".replaced"
        backup.mkdir()
        started: list[str] = []
        try:
            for name in self._names:
                target = self.folder / name
                started.append(name)
                if target.exists() or target.is_symlink():
                    os.replace(target, backup / name)  # the old one is kept until every move has succeeded
                os.replace(self.root / name, target)
        except BaseException:
            # an interrupt can land between a rename and the next statement: roll back from what the folders
            # hold, not from what was recorded
            with _signals_blocked():
                for name in reversed(started):
                    target = self.folder / name
                    if not (self.root / name).exists() and (target.exists() or target.is_symlink()):
                        _remove(target)  # the new output had been moved in
                    if (backup / name).exists() or (backup / name).is_symlink():
                        os.replace(backup / name, target)
            raise
        self.committed = True
        _fsync_dir(self.folder)
        return self.targets

    def __exit__(self, *exc) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def is_staging_leftover(path: Path) -> bool:
    """Whether ``path`` is a temporary sibling an nmn writer makes (useful to tests and cleanup tools)."""
    return TMP_TAG.strip(".-") in path.name and path.name.startswith(".")


__all__ = ["Stage", "is_staging_leftover", "umask", "write_bytes"]
