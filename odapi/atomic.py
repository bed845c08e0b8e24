"""Files and folders that are never seen half-written, and folders only their owner touches.

A reader sees a file's old content or its complete new content, never a part; a process's
staging folder is deleted by others only once the process is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def probe_writable(folder: Path) -> None:
    """Create `folder` if need be and a file in it; OSError when that cannot be done."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".odapi-write-test-"):
        pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class PrivateFolder:
    """A folder `parent/<prefix><host>-<pid>-<random>` that only this process writes in.

    Staging and pin folders live beside what other processes use (the eval service beside the
    trainer, two conversions into one folder), and each must know which leftovers it may
    delete. A PID cannot tell: every container numbers its processes from 1, so the trainer
    and the eval service are both PID 1. Ownership is instead an advisory lock (flock) on the
    folder's `.owner.lock`, held while the folder is in use: the kernel drops it when the owner
    dies, however it dies, and every container on the host sees the same lock. Creating one
    first removes the folders with the same prefix whose owner is gone.
    """

    LOCK = ".owner.lock"

    def __init__(self, parent: Path, prefix: str):
        self.parent = Path(parent)
        self.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(self.parent, prefix)
        while True:
            self.path = self.parent / f"{prefix}{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
            self.path.mkdir()
            lock = self.path / self.LOCK
            self._fd: int | None = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
            _lock(self._fd, blocking=True)
            try:
                if os.fstat(self._fd).st_ino == os.stat(lock).st_ino:
                    break  # still ours: no sweeper took it between creating and locking
            except FileNotFoundError:
                pass
            os.close(self._fd)

    def release(self) -> None:
        """Remove the folder and what is left in it, then give up ownership."""
        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        self.release()


def replace_folder(folder: Path, write: Callable[[Path], None]) -> None:
    """Fill a new folder with `write(path)` in this process's own staging folder, then put it
    in place of `folder` in one rename: readers see the old folder or the new one, whole, and
    a writer killed half-way leaves nothing the next one does not remove."""
    folder = Path(folder)
    with PrivateFolder(folder.parent, f".{folder.name}.partial-") as staging:
        new = staging / "new"
        new.mkdir()
        write(new)
        if folder.exists():
            os.replace(folder, staging / "old")
        os.replace(new, folder)


UNLOCKED_GRACE = 3600.0  # seconds a folder may go without its lock file (being created)


def remove_abandoned(parent: Path, prefix: str) -> list[str]:
    """Delete the PrivateFolders `parent/<prefix>*` whose owner has died; their names."""
    removed = []
    for folder in sorted(Path(parent).glob(f"{prefix}*")):
        try:
            fd = os.open(folder / PrivateFolder.LOCK, os.O_RDWR)
        except FileNotFoundError:  # just created, or its owner died before it could lock
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime > UNLOCKED_GRACE:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder.name)
            continue
        except OSError:
            continue
        try:
            if _lock(fd, blocking=False):  # the owner is gone
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One process at a time, across containers that share the folder, runs the block (a
    read-change-write of a shared file: two evaluators recording results, say)."""
    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        _lock(fd, blocking=True)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _lock(fd: int, blocking: bool) -> bool:
    """flock `fd`; False when another holder has it. Where the file system has no locks, a
    folder is taken to be in use (left alone) rather than risk deleting another's work."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:
        return blocking
    return True


def _host() -> str:
    return re.sub(r"[^\w.]", "_", socket.gethostname())
