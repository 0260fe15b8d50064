"""``gan-anime --export`` and ``gan-anime --serve``: the command line's side of :mod:`gan_anime.serve`."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import sys
from typing import Callable

from gan_anime.cli.flags import FLAGS, PROG, UsageError


def export_run(run_dir: str) -> int:
    """--export: write the SavedModel and/or TFLite file and print where."""
    from gan_anime.cli.main import absolute, checkpoint_path
    from gan_anime.serve.export import export
    written = export(run_dir, out_dir=absolute(FLAGS.export_dir), fmt=FLAGS.format or "all",
                     checkpoint=checkpoint_path(run_dir, FLAGS.checkpoint))
    for kind, path in written.items():
        print(f"{kind}: {path}", flush=True)
    return 0


def _missing_server_packages() -> list:
    return [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]


def _local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve_run(locate: Callable[[], str]) -> int:
    """--serve: claim the port, load the run once, print the URL, serve until Ctrl-C or SIGTERM."""
    missing = _missing_server_packages()
    if missing:
        raise UsageError("serve", f"needs {' and '.join(missing)}: pip install -e '.[serve]' (scripts/init.sh "
                                  f"installs them)")
    from gan_anime.cli.main import load_run
    from gan_anime.serve import server
    run_dir = locate()
    try:
        sock = server.open_socket(FLAGS.host, FLAGS.port)
    except ValueError as e:
        raise UsageError("port" if "listen" in str(e) else "host", str(e)) from None
    try:
        from gan_anime.serve.app import create_app
        app = create_app(load_run(run_dir, FLAGS.checkpoint))
        if not _local(FLAGS.host):
            sys.stderr.write(f"{PROG}: warning: listening on {FLAGS.host}: other machines can reach this page\n")
        print(f"serving {os.path.abspath(run_dir)} at {server.url_of(sock)}/ (Ctrl-C stops)", flush=True)
        server.serve_forever(app, sock)
    except KeyboardInterrupt:
        # uvicorn stops cleanly on Ctrl-C, then raises the signal again; asyncio turns that into
        # KeyboardInterrupt only when its task has not finished first, so both endings are a stop.
        pass
    finally:
        sock.close()
    print("stopped", flush=True)
    return 0
