"""An OpenAI-compatible server as a backend (``--backend openai --base-url URL``): vLLM's server,
llama.cpp's, or a hosted Llama endpoint, evaluated without importing any of them.

It takes text, not token ids: base prompts go to ``/completions``, chat prompts (``messages``) to
``/chat/completions``, where the server applies the model's chat template and tokenizer itself;
so no local tokenizer is loaded or recorded, and suites that build token-id requests (perplexity,
infilling by FIM token ids) are refused before anything runs. Scoring through ``echo`` and
``logprobs`` is not offered yet: llama-cpp-python's server (the one the tests can run) returns
echoed log-probabilities shifted by one position unless the prompt starts with BOS, and none for
the first token, so its numbers could not be verified against anything here.

Requests run concurrently (a bound), with retries and exponential backoff on 429 and 5xx, and a
timeout. The API key comes from ``$LLAMA_ZOO_API_KEY`` or ``$OPENAI_API_KEY`` and is never stored;
the model name asked for and the one each response reports are recorded.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from llama_zoo.options import Option
from llama_zoo.registry.schema import ModelSpec
from llama_zoo.backends.base import (
    TEXT,
    BackendInfo,
    Generation,
    GenerateRequest,
    BackendError,
    cut_at_stop,
)
from llama_zoo.backends.weights import WeightsSource

RETRIES = 5
KEY_VARIABLES = ("LLAMA_ZOO_API_KEY", "OPENAI_API_KEY")
EXTENSIONS = ("repeat_penalty", "ignore_eos")  # fields outside OpenAI's API that llama.cpp and vLLM take


def _api_key() -> str | None:
    return next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)


class ServerError(BackendError):
    pass


class Client:
    """JSON over HTTP with a timeout, retries with backoff on 429/5xx and connection errors."""

    def __init__(self, base_url: str, timeout_s: float = 120.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}/{path.lstrip('/')}"
        headers = {"Content-Type": "application/json"}
        key = _api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(RETRIES):
            request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    raise ServerError(f"{self.base_url} refused the API key (HTTP {exc.code}); set "
                                      f"${KEY_VARIABLES[0]} (or ${KEY_VARIABLES[1]})") from None
                if exc.code != 429 and exc.code < 500 or attempt == RETRIES - 1:
                    detail = exc.read().decode(errors="replace")[:200].replace("\n", " ")
                    raise ServerError(f"{url} answered HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if attempt == RETRIES - 1:
                    reason = getattr(exc, "reason", exc)
                    raise ServerError(f"no OpenAI-compatible server answers at {self.base_url} ({reason})") from None
            except json.JSONDecodeError:
                raise ServerError(f"{url} did not answer JSON: is it an OpenAI-compatible API (…/v1)?") from None
            time.sleep(min(8.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")


class OpenAIBackend:
    info = BackendInfo(
        name="openai", inputs=TEXT, server=True, answers=frozenset({GenerateRequest}), chunk_requests=64,
        summary="an OpenAI-compatible server at --base-url (vLLM, llama.cpp, hosted endpoints); text suites only",
        # the server and its model are the run's weights source (its identity); the rest is how, not what
        options=(
            Option("base_url", None, "An OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1 (key from "
                   "$LLAMA_ZOO_API_KEY or $OPENAI_API_KEY, never stored).", type=str),
            Option("server_model", None, "The model name the server knows (default: the one it serves, or the "
                   "registry's hub id).", type=str),
            Option("concurrency", 8, "Requests in flight at once.", minimum=1),
            Option("timeout", 120.0, "Seconds to wait for one answer.", minimum=1.0),
        ))

    @classmethod
    def resolve(cls, device: str, dtype: str) -> tuple[str, str]:
        if device != "auto" or dtype != "auto":
            raise BackendError("--backend openai runs on the server: drop --device and --dtype")
        return "server", "server"

    @classmethod
    def weights_source(cls, spec: ModelSpec, options: dict[str, Any]) -> WeightsSource:
        """The server and the model it serves: asked once, before a run starts, so a server that is
        down or a key it refuses is one clear line and nothing is stored."""
        options = cls.info.resolve_options(options)
        base_url = options["base_url"]
        if not base_url:
            raise BackendError("--backend openai needs --base-url (for example http://127.0.0.1:8000/v1)")
        client = Client(base_url, options["timeout"])
        served = [m.get("id") for m in client.call("models").get("data", [])]
        model = options["server_model"] or (served[0] if len(served) == 1 else spec.hf_repo)
        if served and model not in served:
            raise BackendError(f"{base_url} serves {', '.join(map(str, served[:5]))}, not {model!r}: give --server-model")
        return WeightsSource("server", ref=f"{client.base_url} {model}", revision=None, content_hash=None)

    def __init__(self, spec: ModelSpec, source: WeightsSource, *, device: str = "auto", dtype: str = "auto",
                 batch_size: int | None = None, max_length: int | None = None, tokenizer: str | None = None,
                 loaded_tokenizer: tuple[Any, str] | None = None, options: dict[str, Any] | None = None):
        # the server places, batches and tokenizes (resolve refused --device and --dtype; a text backend
        # is handed no tokenizer): only its own options and the context matter here
        options = self.info.resolve_options(options or {})
        self.spec, self.source, self.model_id = spec, source, spec.id
        self.max_length = max_length or spec.max_context or 2048
        base_url, self.model = source.ref.split(" ", 1)
        self.client = Client(base_url, options["timeout"])
        self.concurrency = options["concurrency"]
        self.tokenizer = None
        self.reported_models: set[str] = set()
        self.extensions = True  # send EXTENSIONS until a server refuses them

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        jobs = [(req, k) for req in requests for k in range(req.n)]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            answers = list(pool.map(lambda job: self._one(*job), jobs))
        out, pos = [], 0
        for req in requests:
            mine = answers[pos:pos + req.n]
            pos += req.n
            out.append(Generation(texts=[t for t, _ in mine], new_tokens=[n for _, n in mine]))
        return out

    def _one(self, req: GenerateRequest, k: int) -> tuple[str, int]:
        body: dict[str, Any] = {
            "model": self.model, "max_tokens": req.max_new_tokens, "temperature": req.temperature, "top_p": req.top_p,
        }
        if self.extensions:  # llama.cpp-family servers penalise repeats by default (1.1): plain decoding asks for none
            body["repeat_penalty"] = 1.0
        if req.seed is not None:
            body["seed"] = req.seed + k
        if req.stop_strings and not req.ignore_eos:
            body["stop"] = list(req.stop_strings)[:4]  # the API takes at most four
        if req.ignore_eos and self.extensions:
            body["ignore_eos"] = True  # vLLM's extension; servers without it may stop early
        if req.messages:
            body["messages"] = [{"role": role, "content": content} for role, content in req.messages]
            if req.tools:
                body["tools"] = json.loads(req.tools)
            reply = self._call("chat/completions", body)
            message = reply["choices"][0]["message"]
            text = message.get("content") or ""
            if req.tools:  # the server's own parse of the calls, kept as it sent them
                calls = [{c["function"]["name"]: c["function"].get("arguments") or "{}"}
                         for c in message.get("tool_calls") or [] if c.get("function")]
                text = json.dumps({"content": text, "tool_calls": calls}, ensure_ascii=False)
                return text, int((reply.get("usage") or {}).get("completion_tokens") or 0)
        elif req.text is not None:
            body["prompt"] = req.text
            reply = self._call("completions", body)
            text = reply["choices"][0].get("text") or ""
        else:
            raise BackendError("--backend openai takes text: this suite built a token-id prompt only")
        self.reported_models.add(str(reply.get("model")))
        return cut_at_stop(text, req.stop_strings), int((reply.get("usage") or {}).get("completion_tokens") or 0)

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A strict server (OpenAI's own) answers 400 to the extension fields: then go without them."""
        try:
            return self.client.call(path, body)
        except ServerError as exc:
            if "HTTP 400" not in str(exc) or not self.extensions:
                raise
            self.extensions = False
            return self.client.call(path, {k: v for k, v in body.items() if k not in EXTENSIONS})

    def provenance(self) -> dict[str, Any]:
        return {"backend": self.info.name, "weights_source": "server", "base_url": self.client.base_url,
                "server_model": self.model, "reported_models": sorted(self.reported_models),
                "concurrency": self.concurrency, "extensions_sent": self.extensions, "dtype": "server",
                "device_name": "server"}
