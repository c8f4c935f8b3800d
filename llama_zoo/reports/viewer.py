"""``llama-zoo serve``: the store in a browser, read-only. The leaderboards as the report draws them,
each run's page with its samples (paged and filtered in the database, never loaded whole), and two
runs' paired test with the documents where they disagree.

A Starlette app over a ``Store`` opened read-only; pages are Jinja templates with inline styles
(no script or font from anywhere else: it works offline). What a user gets wrong in a URL (an
unknown run, a malformed filter) is a page that says so in one line, never a traceback.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from llama_zoo.errors import LlamaZooError
from llama_zoo.formatting import p_value, with_interval
from llama_zoo.orchestration.recipes import NOT_MEASURED
from llama_zoo.results.store import SampleFilter

PAGE = 50  # samples per page
DIFFERENCES_SHOWN = 200  # documents where two runs disagree, on the compare page
COLLAPSED_CHARS = 1500  # a longer prompt or output starts folded


class BadRequest(LlamaZooError):
    """A URL a user wrote wrong: said on the page, status 400."""


class NotFound(LlamaZooError):
    """Something a URL names that the store or this machine does not hold: status 404."""


@dataclass(frozen=True)
class Verdicts:
    """How a suite's samples pass or fail, where they do (McNemar's key), and its numeric scores."""

    key: str | None

    @classmethod
    def of(cls, info) -> "Verdicts":
        """From a suite's ``SuiteInfo`` (None: a suite whose plug-in is not here)."""
        from llama_zoo.suites.core.base import McNemar

        tests = info.paired_tests if info else ()
        return cls(next((t.key for t in tests if isinstance(t, McNemar)), None))

    def of_sample(self, scores: Any) -> bool | None:
        if self.key is None or not isinstance(scores, dict) or scores.get(self.key) is None:
            return None
        return bool(scores[self.key])


SCORE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_@.\-]{0,63}$")


def parse_filter(params, verdicts: Verdicts) -> SampleFilter:
    """The run page's query string as a filter, or ``BadRequest`` naming what is wrong."""
    verdict = params.get("verdict") or None
    if verdict not in (None, "passed", "failed"):
        raise BadRequest(f"verdict must be passed or failed, not {verdict!r}")
    if verdict and verdicts.key is None:
        raise BadRequest("this suite's samples have no pass/fail verdict: filter by score instead")
    key = params.get("score") or None
    if key is not None and not SCORE_KEY.match(key):
        raise BadRequest(f"score must name a score of the samples (letters, digits, _ . @ -), not {key!r}")
    bounds = []
    for name in ("min", "max"):
        given = params.get(name) or None
        try:
            bound = None if given is None else float(given)
        except ValueError:
            raise BadRequest(f"{name} must be a number, not {given!r}") from None
        if bound is not None and not math.isfinite(bound):
            raise BadRequest(f"{name} must be a finite number, not {given!r}")
        bounds.append(bound)
    if (bounds[0] is not None or bounds[1] is not None) and key is None:
        raise BadRequest("min and max bound a score: name it with score=KEY")
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        raise BadRequest(f"min {bounds[0]:g} is above max {bounds[1]:g}")
    text = (params.get("q") or "").strip() or None
    if text is not None and len(text) > 500:
        raise BadRequest("the text to search for is longer than 500 characters")
    return SampleFilter(passed=None if verdict is None else verdict == "passed", verdict_key=verdicts.key,
                        score_key=key, low=bounds[0], high=bounds[1], text=text)


MAX_INDEX = 2**31 - 1  # a sample index the store's integer column can hold


def after_of(params) -> int:
    given = params.get("after") or "-1"
    try:
        after = int(given)
    except ValueError:
        raise BadRequest(f"after must be a sample index, not {given!r}") from None
    if not -1 <= after <= MAX_INDEX:
        raise BadRequest(f"after must be a sample index from -1 to {MAX_INDEX:,}, not {given}")
    return after


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Display:
    """How one run's samples are shown, read from its suite's declaration once per page: its
    verdicts, whether its target lists what to mark (hidden needles), whether its images are here."""

    run_id: str
    verdicts: Verdicts
    marks: bool
    images: bool

    @classmethod
    def of(cls, run: dict[str, Any]) -> "Display":
        from llama_zoo.suites import suite_info

        info = suite_info(run["suite"])
        return cls(run["id"], Verdicts.of(info), bool(info and info.marks_target),
                   bool(info and info.images and info.images.kept(run.get("dataset_name"))))

    def sample(self, sample: dict[str, Any]) -> dict[str, Any]:
        marked = [v for v in (sample.get("target") or "").split(", ") if v.strip()] if self.marks else []
        image = f"/runs/{self.run_id}/images/{sample['idx']}.png" if self.images and sample.get("input_ref") else None
        return {**sample, "verdict": self.verdicts.of_sample(sample.get("scores")), "highlight": marked,
                "scores_text": _pretty(sample.get("scores")), "extra_text": _pretty(sample.get("extra")),
                "image_url": image}


def _is_code_path(run: dict[str, Any]) -> bool:
    return run["weights_source"] in NOT_MEASURED


class Viewer:
    """The pages, each a function of the store and a request's parameters."""

    def __init__(self, store):
        import jinja2
        from markupsafe import Markup, escape

        self.store = store
        self.env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                      loader=jinja2.FunctionLoader(self._template))
        self.env.globals.update(interval=with_interval, pvalue=p_value, code_path=_is_code_path)

        def marked(text: str, needles: list[str]) -> Markup:
            """``text`` escaped, each of ``needles`` in it inside <mark> (split on the raw text, so one
            never matches inside an entity or a mark already placed)."""
            if not needles:
                return escape(text)
            pattern = re.compile("|".join(re.escape(n) for n in sorted(set(needles), key=len, reverse=True)))
            pieces, last = [], 0
            for found in pattern.finditer(text):
                pieces += [escape(text[last:found.start()]), Markup("<mark>%s</mark>") % found.group()]
                last = found.end()
            return Markup("").join([*pieces, escape(text[last:])])

        self.env.filters["marked"] = marked

    @staticmethod
    def _template(name: str) -> str:
        return (resources.files("llama_zoo.reports") / "templates" / "viewer" / name).read_text(encoding="utf-8")

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(database=self.store.engine.url.render_as_string(), **context)

    def index(self) -> str:
        from llama_zoo.reports.html import render_html

        return render_html(self.store, link_base="")

    def run(self, run_id: str, params) -> str:
        run = self.store.get(run_id)
        display = Display.of(run)
        chosen = parse_filter(params, display.verdicts)
        after = after_of(params)
        rows = self.store.sample_page(run["id"], chosen, after=after, limit=PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        kept = {k: params.get(k) for k in ("verdict", "score", "min", "max", "q") if params.get(k)}
        next_url = f"/runs/{run['id']}?{urlencode({**kept, 'after': rows[-1]['idx']})}" if more else None
        first_url = f"/runs/{run['id']}?{urlencode(kept)}" if after >= 0 else None
        keys = sorted({k for r in rows if isinstance(r.get("scores"), dict) for k, v in r["scores"].items()
                       if isinstance(v, (int, float))})
        return self.render("run.html.j2", run=run, provenance=_pretty({k: v for k, v in run.items() if k != "metrics"}),
                           samples=[display.sample(r) for r in rows], verdicts=display.verdicts, chosen=chosen,
                           params=kept, next_url=next_url, first_url=first_url, score_keys=keys,
                           collapsed=COLLAPSED_CHARS)

    def image(self, run_id: str, idx: int) -> bytes:
        import io

        from llama_zoo.suites import suite_info

        run = self.store.get(run_id)
        info = suite_info(run["suite"])
        found = self.store.sample_page(run["id"], after=idx - 1, limit=1) if idx <= MAX_INDEX else []
        if info is None or info.images is None or not found or found[0]["idx"] != idx:
            raise NotFound(f"run {run['id']} has no sample #{idx} with an image")
        image = info.images.of(run.get("dataset_name"), found[0]["input_ref"] or "")
        if image is None:
            raise NotFound(f"the image of {found[0]['input_ref']} ({run.get('dataset_name')}) is not on this machine")
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()

    def compare(self, params) -> str:
        from llama_zoo.reports.compare import check_pair, keyed_samples, paired, resolve

        a, b = params.get("a"), params.get("b")
        if not a or not b:
            raise BadRequest("compare two runs: /compare?a=RUN&b=RUN")
        run_a, run_b = resolve(self.store, a), resolve(self.store, b)
        check_pair(run_a, run_b)
        # each run's samples read once: for the paired test (their scores) and for the documents that differ
        left, right = keyed_samples(self.store, run_a["id"]), keyed_samples(self.store, run_b["id"])
        result = paired(run_a, run_b, *({k: s["scores"] or {} for k, s in side.items()} for side in (left, right)))
        shown_a, shown_b = Display.of(run_a), Display.of(run_b)
        differing, total = _differing(left, right, shown_a, shown_b)
        return self.render("compare.html.j2", a=run_a, b=run_b, result=result, differing=differing,
                           differing_total=total, verdicts=shown_a.verdicts, shown_at_most=DIFFERENCES_SHOWN)


def _differing(left: dict[str, Any], right: dict[str, Any], shown_a: Display,
               shown_b: Display) -> tuple[list[dict[str, Any]], int]:
    """The documents both runs answered where they disagree: a different verdict where the suite
    has one, else a different output; paired as ``compare`` pairs them (input reference and repeat)."""
    verdicts = shown_a.verdicts
    out, total = [], 0
    for key, theirs in right.items():
        if key not in left:
            continue
        mine = left[key]
        if verdicts.key is not None:
            differs = verdicts.of_sample(mine.get("scores")) != verdicts.of_sample(theirs.get("scores"))
        else:
            differs = (mine.get("output") or "") != (theirs.get("output") or "")
        if differs:
            total += 1
            if len(out) < DIFFERENCES_SHOWN:
                out.append({"key": key, "a": shown_a.sample(mine), "b": shown_b.sample(theirs)})
    return out, total


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _host_of(request) -> str:
    from urllib.parse import urlsplit

    return (urlsplit("//" + request.headers.get("host", "")).hostname or "").lower()


def create_app(store, loopback_only: bool = True):
    """The ASGI app over ``store`` (opened read-only by the caller). ``loopback_only``: requests
    must name this machine (a page another site's script reaches through a rebound DNS name is refused)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    viewer = Viewer(store)

    def page(render, request: Request, media_type: str = "text/html") -> Response:
        from llama_zoo.results.store import RunNotFoundError

        if loopback_only and _host_of(request) not in LOOPBACK_NAMES:
            return _error(viewer, 400, f"host {request.headers.get('host', '')!r} is not this machine's: the viewer "
                                       "listens on loopback and answers for localhost, 127.0.0.1 and [::1] only")
        try:
            return Response(render(request), media_type=media_type)
        except BadRequest as exc:
            return _error(viewer, 400, str(exc))
        except (RunNotFoundError, NotFound) as exc:
            return _error(viewer, 404, str(exc))
        except LlamaZooError as exc:  # two runs that cannot be compared, a database gone: said, not raised
            return _error(viewer, 409, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug of ours: one line on the page and the console, no traceback
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            message = f"internal error on {request.url.path}: {type(exc).__name__}: {first}"
            print(message, file=sys.stderr)
            return _error(viewer, 500, message)

    routes = [
        Route("/", lambda r: page(lambda _: viewer.index(), r)),
        Route("/runs/{run_id}", lambda r: page(lambda q: viewer.run(q.path_params["run_id"], q.query_params), r)),
        Route("/runs/{run_id}/images/{idx:int}.png",
              lambda r: page(lambda q: viewer.image(q.path_params["run_id"], q.path_params["idx"]), r, "image/png")),
        Route("/compare", lambda r: page(lambda q: viewer.compare(q.query_params), r)),
        Route("/favicon.ico", lambda r: Response(status_code=204)),  # browsers ask; there is none
    ]

    async def not_found(request, exc):
        return _error(viewer, 404, f"no page {request.url.path}: the viewer has /, /runs/RUN and /compare?a=RUN&b=RUN")

    async def not_allowed(request, exc):
        return _error(viewer, 405, f"{request.method} {request.url.path}: the viewer only reads (GET)")

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})


def _error(viewer: Viewer, status: int, message: str):
    from starlette.responses import HTMLResponse

    return HTMLResponse(viewer.render("error.html.j2", status=status, message=message), status_code=status)
