"""A long stage's lifetime: it ends when the process that started it dies, a SIGTERM unwinds it like Ctrl-C
(so it can close what it opened), and one process at a time works on a checkpoint.

Without this, `kill -9` of `dvc repro` alone left `train.py` running as an orphan that later wrote its outputs
over the ones a new `dvc repro` had restored. The parent's death is delivered by Linux itself
(`prctl(PR_SET_PDEATHSIG)`). `dvc` starts the stage through `$SHELL -c` (`/bin/sh` when SHELL is unset). bash
execs a single command, so the parent is dvc; dash (Debian's /bin/sh) forks it, so the parent is a shell that
outlives dvc. In that case a thread also watches the shell and stops this process when the shell loses its
parent. The lock is `fcntl.flock`, released by the kernel when its holder dies however it dies.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

PR_SET_PDEATHSIG = 1
# Shells that may run `-c 'python stages/x.py'` as a child instead of exec'ing it (dash 0.5.12 does).
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "yash", "fish", "busybox"})


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (the parent died, or someone asked the stage to stop): unwinds as Ctrl-C does."""


def _terminate(signum, frame):  # noqa: ARG001 - a signal handler's signature
    # Once: the parent-death signal comes again as each thread of a multi-threaded parent (dvc) exits (seen:
    # three SIGTERMs for one `kill -9`), and a second one would cut short the cleanup the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"stopped by signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ctrl-C and SIGTERM are ignored while the block runs: the (bounded) cleanup of a stop already under way
    finishes, and the stop that started it is raised after. Main thread only, as every signal handler."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _proc(pid: int) -> tuple[str, int] | None:
    """(command name, parent pid) of a live process, from /proc; None when it is gone or unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
    return name, int(rest[1])  # the fields after the name: state, ppid, ...


def _watch_shell(shell: int, starter: int, every_s: float) -> None:
    """SIGTERM this process once `shell` is gone or no longer the child of `starter`: Linux reparents a
    process's children as it exits, before it is reaped, so this is the parent-death signal one level up."""
    while (_proc(shell) or ("", 0))[1] == starter:
        time.sleep(every_s)
    os.kill(os.getpid(), signal.SIGTERM)


def end_with_parent(every_s: float = 0.5) -> None:
    """SIGTERM this process when the process that started it dies (its parent, or the parent of the shell it
    runs under), and turn SIGTERM into Terminated. Linux only; elsewhere (and for a parent that is already
    gone) the check at the end stands alone."""
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _terminate)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        shell = _proc(parent)
        if shell and shell[0] in SHELLS and shell[1] > 1:
            threading.Thread(target=_watch_shell, args=(parent, shell[1], every_s), daemon=True,
                             name="end-with-parent").start()
    if os.getppid() != parent:  # the parent died before prctl took effect
        raise Terminated("the process that started this stage is gone")


class Busy(RuntimeError):
    """Another process holds the lock."""


@contextlib.contextmanager
def exclusive(path: Path, what: str, wait_s: float = 60.0) -> Iterator[None]:
    """Hold an exclusive lock on `path` (made if missing) while the block runs; waits up to `wait_s` for a
    holder to finish (one that was just told to stop needs a moment to close), then raises Busy naming it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        deadline, said = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                if time.monotonic() >= deadline:
                    raise Busy(f"{what} is already running (pid {holder}, lock {path}); wait for it to finish or "
                               f"stop it (kill {holder}), then run again") from None
                if not said:
                    print(f"waiting for {what} (pid {holder}) to finish...", file=sys.stderr, flush=True)
                    said = True
                time.sleep(0.5)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)
