"""Run the web app (:mod:`gan_anime.serve.app`) with uvicorn: in the foreground (``ENTRY --serve``) or on a
background thread (tests, benchmarks)::

    from gan_anime.serve.server import background
    with background(gan_anime.load(run_dir)) as url:     # e.g. http://127.0.0.1:43817
        urllib.request.urlopen(url + "/api/faces?count=4").read()
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


def open_socket(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening TCP socket on (host, port) (port 0: any free port).  ValueError names a port in use or a
    host that is not an address of this machine."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ValueError(f"host {host!r} is not a known address ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({e.strerror}); choose another port with --port") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def _server(app, sock):
    import uvicorn
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve_forever(app, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM."""
    _server(app, sock).run(sockets=[sock])


@contextlib.contextmanager
def background(run, host: str = DEFAULT_HOST, port: int = 0, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``run`` (a loaded GanRun) on a background thread; yields the base URL, stops on exit."""
    from gan_anime.serve.app import create_app
    app = create_app(run)
    sock = open_socket(host, port)
    server = _server(app, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
