"""Atomic file output: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path


def _create_sibling(target: Path) -> Path:
    """Create an empty, uniquely named file next to ``target`` with the mode ``open(target, "w")`` gives.

    ``tempfile.mkstemp`` would make it 0600 whatever the umask; creating it with 0666 lets the kernel
    apply the umask, as for any new file. When ``target`` exists, its permission bits are kept instead,
    as an ordinary overwrite keeps them.
    """
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.part{target.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {target}")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    If the body raises (or the process dies), the target is left untouched and the temporary file is
    removed, so a reader never sees a half-written output. The written file's permissions are what an
    ordinary ``open(target, "w")`` would give: the umask for a new file, the old mode for a replaced one.
    """
    target = Path(target)
    if target.is_dir():  # checked first: the rename would fail naming the temporary file
        raise IsADirectoryError(errno.EISDIR, "cannot write a file here: it is a folder", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_sibling(target)
    mode = stat.S_IMODE(tmp_path.stat().st_mode)
    try:
        yield tmp_path
        if stat.S_IMODE(tmp_path.stat().st_mode) != mode:  # a writer that replaced the file (safetensors)
            os.chmod(tmp_path, mode)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
