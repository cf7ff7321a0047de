"""Starting the service as a real process for a test: a free port, /readyz, a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lifecycle.serving.client import HttpClient

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    args: list[str], env: dict[str, str], port: int, log: Path, cwd: Path = ROOT
) -> Iterator[str]:
    """Start a server in ``cwd``, wait until /readyz is 200, yield its URL, then stop it."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 150
            with HttpClient(url) as probe:
                while not probe.ready():
                    assert process.poll() is None, log.read_text(errors="replace")[-3000:]
                    assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                    time.sleep(0.5)
            yield url
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    assert process.returncode == 0, log.read_text(errors="replace")[-3000:]
