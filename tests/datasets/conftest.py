"""Dataset test fixtures: loopback-only networking, the shared UCI files, a local server."""

from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from invppl.datasets import MNIST, load_mnist

LOOPBACK = "127.0.0.1"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach any address but 127.0.0.1, nor write to the user's cache."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if host != LOOPBACK:
                sock.close()
                raise AssertionError(f"a dataset test tried to connect to {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        check(self, address)
        return real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        check(self, address)
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setenv("INVPPL_CACHE", str(tmp_path / "invppl-cache-home"))
    monkeypatch.delenv("INVPPL_MNIST_DIR", raising=False)


def find_uci_dir() -> Path | None:
    """``shared/data/uci`` beside the repository (or inside it), found by walking up."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        candidate = folder / "shared" / "data" / "uci"
        if (candidate / "adult.data").is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def mnist() -> MNIST:
    """The 5,000 bundled digits, loaded once."""
    return load_mnist()


@pytest.fixture(scope="session")
def uci_dir() -> Path:
    folder = find_uci_dir()
    if folder is None:
        message = "shared/data/uci (the UCI Adult and German files) not found above the repo"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must run beside shared/")  # never skip silently in CI
        pytest.skip(message)
    return folder


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files, recording every request path on the server."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()


class Server:
    def __init__(self, handler: Callable[..., SimpleHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.httpd.server_address[1]}/"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests  # type: ignore[attr-defined, no-any-return]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Starts HTTP servers on 127.0.0.1 (port 0): ``serve(directory)`` or ``serve(handler=...)``."""
    servers: list[Server] = []

    def start(
        directory: Path | None = None, *, handler: type[SimpleHTTPRequestHandler] = QuietHandler
    ) -> Server:
        factory = functools.partial(handler, directory=str(directory)) if directory else handler
        server = Server(factory)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
