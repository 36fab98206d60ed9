"""Process hardening: the executor hides itself from its workers; a worker confines itself.

A worker starts as the executor's user with a clean environment, then, before it serves:
keeps its imports working from directories the target user may not traverse, sets resource
limits, drops to ``worker_user`` when it runs as root, and asks to be killed if the executor
dies. All of this is stdlib only: the worker imports it.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pwd
import resource
import signal
import sys
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4

FILE_SIZE_LIMIT = 64 * 1024 * 1024  # bytes one file written by user code may reach
OPEN_FILES_LIMIT = 256


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}): {os.strerror(errno)}")


def make_undumpable() -> None:
    """Executor: a worker running as the same user cannot read /proc/<pid>/environ or mem."""
    _prctl(PR_SET_DUMPABLE, 0)


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int


def worker_identity(user: str) -> Identity | None:
    """The user workers switch to, or None when this process is not root (they keep its user)."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise LookupError(f"worker user {user!r} does not exist") from None
    return Identity(pw.pw_uid, pw.pw_gid)


def pin_import_paths() -> None:
    """Reach every import directory through an open descriptor (``/proc/self/fd/N``).

    The interpreter may live where the worker's user cannot go (a pyenv under /root); a path
    through a descriptor opened before the switch does not traverse the parents, so imports of
    modules not loaded yet keep working while every other file stays out of reach.
    """
    pinned: dict[str, str] = {}
    for path in sys.path:
        if path and path not in pinned and os.path.isdir(path):
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            pinned[path] = f"/proc/self/fd/{fd}"
    if not pinned:
        return

    def pin(path: str) -> str:
        for real, via in pinned.items():
            if path == real or path.startswith(real + os.sep):
                return via + path[len(real) :]
        return path

    sys.path[:] = [pin(p) for p in sys.path]
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            search[:] = [pin(p) for p in search]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()


def _limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def confine(identity: Identity | None, memory_mb: int, parent: int) -> None:
    """Limits, then the switch of user, then death with the parent. Irreversible."""
    pin_import_paths()
    _limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT)
    _limit(resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the executor, which stops us
    if identity is not None:
        os.setgroups([])
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)
    # After the switch: a change of credentials clears the parent-death signal.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the executor died before we asked
        os._exit(1)


def set_cpu_limit(seconds: float) -> None:
    """Soft CPU limit: what this process used so far plus ``seconds`` plus one."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    if _CPU_HARD != resource.RLIM_INFINITY:
        soft = min(soft, _CPU_HARD)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, _CPU_HARD))


_CPU_HARD = resource.getrlimit(resource.RLIMIT_CPU)[1]
