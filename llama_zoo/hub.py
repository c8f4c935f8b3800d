"""Whether the Hugging Face Hub can be reached, asked once per process before anything is loaded.

Offline, ``datasets`` and ``huggingface_hub`` retry each request with back-off: half a minute or more
before a load fails. Where the hub's host cannot be reached (its name does not resolve, or nothing
answers within ``PROBE_S``), llama-zoo turns on their offline modes for the rest of the process, so a
load takes what is cached at once, and what is not cached fails at once with the one-line error
that names ``$LLAMA_ZOO_DATA`` and ``--dataset PATH``. Offline modes set by the user are kept as they are.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import lru_cache
from urllib.parse import urlparse

PROBE_S = 2.0
TRUE = ("1", "ON", "YES", "TRUE")


PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def offline_set() -> bool:
    return any(os.environ.get(v, "").upper() in TRUE
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


@lru_cache(maxsize=1)
def reachable() -> bool:
    """One TCP connection to the hub's host (``$HF_ENDPOINT``, else huggingface.co), at most ``PROBE_S``."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout=PROBE_S).close()
        return True
    except OSError:
        return False


def offline_if_unreachable() -> bool:
    """True when the hub is offline for this process (set so by the user, or found unreachable now)."""
    if offline_set():
        return True
    if any(os.environ.get(v) for v in PROXIES) or reachable():
        return False  # behind a proxy the hub is reached through it: a direct probe would say nothing
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    # the libraries read these at import: modules already imported are told directly
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    config = sys.modules.get("datasets.config")
    if config is not None:
        config.HF_HUB_OFFLINE = config.HF_DATASETS_OFFLINE = True
    return True
