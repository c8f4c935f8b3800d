"""``llama-zoo serve``: the results store in a browser, read-only."""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Optional

import typer

from llama_zoo.cli.common import DB_OPTION, console
from llama_zoo.errors import LlamaZooError


def serve_command(
    db: Optional[str] = DB_OPTION,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Loopback by default: anything else "
                             "shows the store's prompts and outputs to that network."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: any free one)."),
) -> None:
    """Read runs, their samples and paired differences in a browser: the leaderboards at /, a run's
    metrics and samples (paged, filtered by verdict, score or text) at /runs/RUN, two runs' paired test
    and the documents where they disagree at /compare?a=RUN&b=RUN. Never writes to the store."""
    try:
        import uvicorn

        from llama_zoo.reports.viewer import create_app
    except ImportError:
        raise LlamaZooError("llama-zoo serve needs starlette and uvicorn: pip install 'llama-zoo[serve]'") from None
    from llama_zoo.results.db import display
    from llama_zoo.results.store import Store

    store = Store.open(db, read_only=True)
    listening = _bind(host, port)
    address = listening.getsockname()
    loopback = ipaddress.ip_address(address[0]).is_loopback  # where it listens, whatever name was given
    if not loopback:
        print(f"warning: listening on {host}: the store's prompts, outputs and provenance are visible to that "
              "network (--host 127.0.0.1 keeps them on this machine)", file=sys.stderr)
    url_host = f"[{address[0]}]" if ":" in address[0] else address[0]
    console.print(f"serving {display(store.url)} read-only at http://{url_host}:{address[1]}/ (Ctrl-C stops)",
                  highlight=False, soft_wrap=True)
    server = uvicorn.Server(uvicorn.Config(create_app(store, loopback_only=loopback), log_level="warning",
                                           access_log=False))
    server.run(sockets=[listening])


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port or an unknown address is one line."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(128)
    except OSError as exc:
        raise LlamaZooError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listening
