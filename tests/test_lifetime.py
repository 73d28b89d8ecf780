"""A stage's lifetime: it ends when its parent dies, and the cleanup that a stop starts is never cut short."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT

CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from pubmed_rct import lifetime
    lifetime.end_with_parent()
    open({ready!r}, "w").close()
    try:
        time.sleep(60)
    except lifetime.Terminated:
        with lifetime.shielded():
            time.sleep(2)  # the cleanup: ending the MLflow run, say
            open({done!r}, "w").write("cleaned up")
        raise
""")
# A parent with several threads, as dvc has: Linux sends the parent-death signal again as each one exits. It
# starts the child as dvc does, through `$SHELL -c`: bash execs the command, dash (Debian's /bin/sh, what dvc
# uses when SHELL is unset, as in CI) forks it and stays in between.
PARENT = textwrap.dedent("""
    import subprocess, sys, threading, time
    for _ in range(4):
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    cmd = [sys.argv[2], "-c", '"$0" -c "$1"', sys.executable, sys.argv[1]]
    child = threading.Thread(target=lambda: subprocess.run(cmd))
    child.start()
    time.sleep(60)
""")


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_a_killed_multithreaded_parent_stops_the_child_once_and_its_cleanup_finishes(tmp_path, shell):
    ready, done = tmp_path / "ready", tmp_path / "done"
    child = CHILD.format(root=str(ROOT), ready=str(ready), done=str(done))
    parent = subprocess.Popen([sys.executable, "-c", PARENT, child, shell], start_new_session=True)
    deadline = time.time() + 30
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert ready.exists(), "the child did not start"
    parent.kill()
    parent.wait()
    deadline = time.time() + 15
    while not done.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert done.read_text() == "cleaned up"  # the 2nd and 3rd SIGTERM did not interrupt the cleanup


def test_shielded_holds_off_ctrl_c_and_sigterm_and_restores_them():
    from pubmed_rct import lifetime
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with lifetime.shielded():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # a handler would run here
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
