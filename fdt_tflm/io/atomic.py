"""All-or-nothing output: files and folders appear whole or not at all, never over the input.

- :func:`write_all` stages every file as a temp file beside its target, then renames them
  all into place; if any step fails, the targets that were already replaced get their old
  contents back and no temp file is left behind.
- :func:`build_dir` builds a folder in a temp folder beside it and renames it into place.
- Written files follow the umask, like any file a program creates (``mkstemp`` alone
  would give them mode 0600).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence, TypeVar, Union

from ..errors import FdtError

PathLike = Union[str, "os.PathLike[str]"]
R = TypeVar("R")
TEMP_PREFIX = ".fdt_tflm_"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def refuse_overwrite(targets: Iterable[PathLike], inputs: Iterable[PathLike]) -> None:
    """Raise if any target is one of the inputs (same file, or the same path if not there yet)."""
    inputs = [os.fspath(i) for i in inputs if i is not None]
    for target in targets:
        t = os.fspath(target)
        for i in inputs:
            if _same_file(t, i):
                raise FdtError(f"{t}: refusing to overwrite the input model; choose another output")


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


@dataclass
class _Staged:
    target: str
    tmp: str
    backup: Optional[str] = None
    committed: bool = False


def atomic_write(path: PathLike, data: bytes) -> None:
    """Write one file via a temp file in the same folder and a rename: never half written."""
    write_all({os.fspath(path): data})


def write_all(files: Mapping[PathLike, bytes], protect: Sequence[PathLike] = (),
              make_dirs: Sequence[PathLike] = ()) -> None:
    """Write every file or none.  ``protect``: inputs that no target may replace.
    ``make_dirs``: folders created if missing (and removed again if the write fails)."""
    targets = [os.fspath(p) for p in files]
    refuse_overwrite(targets, protect)
    for k, t in enumerate(targets):
        if any(_same_file(t, u) for u in targets[:k]):
            raise FdtError(f"{t} is named for two outputs")
    created = _make_dirs(make_dirs)
    staged: list[_Staged] = []
    try:
        for path, data in files.items():
            staged.append(_stage(os.fspath(path), data))
        _commit(staged)
    except BaseException:
        _rollback(staged)
        for d in reversed(created):
            shutil.rmtree(d, ignore_errors=True)
        raise
    finally:
        _discard(staged)


def _make_dirs(dirs: Sequence[PathLike]) -> list[str]:
    """Create missing folders; returns the top-most ones created (to remove on failure)."""
    created: list[str] = []
    for d in map(os.fspath, dirs):
        if os.path.exists(d):
            if not os.path.isdir(d):
                raise FdtError(f"{d} exists and is not a folder")
            continue
        top = os.path.abspath(d)
        while not os.path.exists(os.path.dirname(top)):
            top = os.path.dirname(top)
        try:
            os.makedirs(d)
        except OSError as e:
            raise FdtError(f"cannot create {d}: {e.strerror or e}") from None
        created.append(top)
    return created


def _stage(path: str, data: bytes) -> _Staged:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FdtError(f"{path}: folder {d} does not exist")
    if os.path.isdir(path):
        raise FdtError(f"{path} is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=d)
    except OSError as e:
        raise FdtError(f"cannot write {path}: {e.strerror or e}") from None
    staged = _Staged(path, tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
    except OSError as e:
        os.unlink(tmp)
        raise FdtError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        os.unlink(tmp)
        raise
    return staged


def _commit(staged: list[_Staged]) -> None:
    for s in staged:
        try:
            if os.path.exists(s.target):
                s.backup = _backup(s.target, s.tmp + ".old")
            os.replace(s.tmp, s.target)
        except OSError as e:
            raise FdtError(f"cannot write {s.target}: {e.strerror or e}") from None
        s.committed = True


def _backup(path: str, backup: str) -> str:
    """The old contents of ``path`` under ``backup``, restored if a later rename fails."""
    try:
        os.link(path, backup)
    except OSError:  # a file system without hard links
        shutil.copy2(path, backup)
    return backup


def _rollback(staged: list[_Staged]) -> None:
    for s in reversed(staged):
        if not s.committed:
            continue
        if s.backup is not None:
            os.replace(s.backup, s.target)
            s.backup = None
        else:
            os.unlink(s.target)


def _discard(staged: list[_Staged]) -> None:
    for s in staged:
        for p in (s.tmp, s.backup):
            if p is not None and os.path.lexists(p):
                os.unlink(p)


def build_dir(out_dir: PathLike, build: Callable[[Path], R], protect: Sequence[PathLike] = (),
              fresh: Sequence[str] = ()) -> R:
    """Build a folder with ``build(tmp)`` in a temp folder beside ``out_dir``, then rename it
    into place: ``out_dir`` is never a half-built project.  An existing ``out_dir`` is
    replaced; what it held that the new build does not (a build/ folder, the user's own
    files) is moved into the new one, except below the ``fresh`` top-level names.
    ``protect``: inputs that must not be replaced or removed."""
    out = Path(os.path.abspath(out_dir))
    if out.exists() and not out.is_dir():
        raise FdtError(f"{out_dir} exists and is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{TEMP_PREFIX}", dir=out.parent))
    except OSError as e:
        raise FdtError(f"cannot create {out_dir}: {e.strerror or e}") from None
    try:
        result = build(tmp)
        os.chmod(tmp, 0o777 & ~current_umask())
        _refuse_replacing(out, tmp, protect, fresh)
        _swap_in(tmp, out, fresh)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _refuse_replacing(out: Path, new: Path, protect: Sequence[PathLike], fresh: Sequence[str]) -> None:
    for p in protect:
        real = Path(os.path.realpath(p))
        try:
            rel = real.relative_to(os.path.realpath(out))
        except ValueError:
            continue
        if (new / rel).exists() or (rel.parts and rel.parts[0] in fresh):
            raise FdtError(f"{p}: refusing to overwrite the input model; choose another output folder")


def _swap_in(new: Path, out: Path, fresh: Sequence[str]) -> None:
    if not out.exists():
        os.rename(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}{TEMP_PREFIX}old_", dir=out.parent))
    os.rename(out, old / "d")
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old / "d", out)
        os.rmdir(old)
        raise
    try:
        _carry_over(old / "d", out, fresh)
    except OSError:
        raise FdtError(f"wrote {out}, but not all of what it held before could be moved into it: "
                       f"the rest is in {old / 'd'}") from None
    shutil.rmtree(old, ignore_errors=True)


def _carry_over(old: Path, new: Path, skip: Sequence[str] = ()) -> None:
    """Move what ``old`` has and ``new`` lacks into ``new`` (recursively through shared folders)."""
    for entry in old.iterdir():
        if entry.name in skip:
            continue
        dest = new / entry.name
        if not os.path.lexists(dest):
            os.rename(entry, dest)
        elif entry.is_dir() and not entry.is_symlink() and dest.is_dir() and not dest.is_symlink():
            _carry_over(entry, dest)
