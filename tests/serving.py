"""An ASGI app served over real HTTP in a thread, for tests that talk to it as a browser or a client would."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from sandbox.launcher import free_port


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """``app`` served over real HTTP on a free port, as the api-server mounts it: its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
