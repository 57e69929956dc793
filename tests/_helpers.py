"""Helpers shared by several test modules (imported as ``from _helpers import ...``: conftest puts
tests/ on sys.path)."""

from __future__ import annotations

import os
import select
import signal
import time
import warnings

import pytest


def fork_and_run(task, timeout: float = 120.0) -> str:
    """Runs `task()` (returning a str) in a child made by os.fork; returns its output. A child that
    does not answer within `timeout` seconds is killed and the test fails, as does a child that
    raises (its error is the output) or exits with a non-zero status."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "fork() in a multi-threaded process"
        pid = os.fork()
    if pid == 0:  # the child
        os.close(r)
        code = 0
        try:
            out = task()
        except BaseException as e:  # noqa: BLE001
            out, code = f"ERROR {e!r}", 1
        try:
            os.write(w, out.encode())
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([r], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child hung for {timeout} s")
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
    return out
