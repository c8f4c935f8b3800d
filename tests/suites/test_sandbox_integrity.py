"""Verdicts no program can forge: completions that try to make HumanEval's tests pass without
solving the task (objects that equal everything, subclasses with lying comparisons, a frame walk
to the reporting code, patched builtins, forged messages on every descriptor, early exits,
hostile __repr__, a billion-element result) score 0 on the first 20 tasks, while the canonical
solutions still score 1.0. The test runs in the sandbox's trusted referee; the program only answers
calls with plain data."""

from __future__ import annotations

import textwrap

import pytest

from llama_zoo.suites.code import humaneval
from llama_zoo.suites.code.sandbox import Limits



@pytest.fixture(scope="module")
def first_20(humaneval_problems) -> list[str]:
    return list(humaneval_problems.tasks)[:20]


def body(code: str) -> str:
    """A completion: code indented as the entry point's body."""
    return textwrap.indent(textwrap.dedent(code).strip("\n"), "    ") + "\n"


def module_level(code: str) -> str:
    """A completion that ends the function and runs code when the program is loaded."""
    return "    return None\n" + textwrap.dedent(code).strip("\n") + "\n"


LIAR = """
class Liar:
    __eq__ = lambda s, o: True
    __ne__ = lambda s, o: False
    __lt__ = __le__ = __gt__ = __ge__ = lambda s, o: True
    __bool__ = lambda s: True
    __len__ = lambda s: 0
    __abs__ = lambda s: 0
    __sub__ = __rsub__ = __add__ = __radd__ = lambda s, o: 0
    __hash__ = lambda s: 0
    __iter__ = lambda s: iter(())
    __contains__ = lambda s, x: True
"""

FORGERIES = {
    "always-equal object": body("""
        class _Any:
            __eq__ = lambda s, o: True
        return _Any()"""),
    "every comparison and number method lies": body(LIAR + "return Liar()"),
    "a list of liars": body(LIAR + "return [Liar(), Liar()]"),
    "int subclass that equals everything": body("""
        class I(int):
            __eq__ = lambda s, o: True
            __ne__ = lambda s, o: False
            __hash__ = int.__hash__
        return I(0)"""),
    "str subclass that equals everything": body("""
        class S(str):
            __eq__ = lambda s, o: True
            __hash__ = str.__hash__
        return S('')"""),
    "list subclass that equals everything": body("""
        class L(list):
            __eq__ = lambda s, o: True
        return L()"""),
    "float and bool subclasses": body("""
        class F(float):
            __eq__ = lambda s, o: True
            __sub__ = __rsub__ = lambda s, o: 0.0
            __abs__ = lambda s: 0.0
        return F(0)"""),
    "frame walk to the reporter": body("""
        import sys, os, json
        frame = sys._getframe()
        while frame is not None:
            for name, value in list(frame.f_locals.items()):
                if callable(value) and name in ('report', 'write_frame', 'send_frame', 'write'):
                    for fd in range(3, 64):
                        for message in (b'["done", "passed", ""]', b'["ready"]', b'["returned",["bool",true]]'):
                            try:
                                value(fd, message)
                            except Exception:
                                pass
            frame = frame.f_back
        os._exit(0)"""),
    "patched builtins": body("""
        import builtins
        builtins.AssertionError = type('NotAnAssertion', (Exception,), {})
        builtins.isinstance = lambda *a: True
        builtins.abs = lambda x: 0
        builtins.round = lambda *a: 0
        builtins.len = lambda x: 0
        return None"""),
    "patched sys.modules and __main__": body("""
        import sys
        for name in list(sys.modules):
            if name not in ('sys', 'builtins'):
                sys.modules[name] = None
        sys.modules['__main__'].__dict__.clear()
        return None"""),
    "forged messages on every descriptor": module_level("""
        import os, struct
        for fd in range(1024):
            for message in (b'["ready"]', b'["returned",["bool",true]]', b'["done","passed",""]'):
                try:
                    os.write(fd, struct.pack('>Q', len(message)) + message)
                except OSError:
                    pass
        """),
    "os._exit(0) at import time": module_level("import os\nos._exit(0)"),
    "sys.exit(0) at import time": module_level("import sys\nsys.exit(0)"),
    "os._exit(0) in the call": body("import os\nos._exit(0)"),
    "infinite recursion in __repr__": body("""
        class R:
            def __repr__(self):
                return repr(self)
            __str__ = __repr__
            __eq__ = lambda s, o: True
        return R()"""),
    "an exception whose __str__ recurses": body("""
        class E(Exception):
            def __str__(self):
                return str(self)
        raise E()"""),
    "a billion-element list": body("return [0] * 10**9"),
    "a billion elements, shared": body("row = [0] * 10**4\nreturn [row] * 10**5"),
    "a lazy range": body("return range(10**9)"),
}


@pytest.fixture(scope="module")
def limits(humaneval_problems):
    return humaneval.canonical_limits(humaneval_problems)


def test_canonical_solutions_still_pass(first_20, humaneval_problems, limits):
    outcomes = humaneval.score(humaneval_problems, [(t, humaneval_problems.tasks[t]["canonical_solution"]) for t in first_20], limits)
    assert [o.outcome for o in outcomes] == ["passed"] * 20


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forgery_scores_zero(first_20, humaneval_problems, name, limits):
    capped = {t: Limits(timeout_s=min(limits[t].timeout_s, 5.0)) for t in first_20}
    outcomes = humaneval.score(humaneval_problems, [(t, FORGERIES[name]) for t in first_20], capped)
    assert not any(o.passed for o in outcomes), [(t, o) for t, o in zip(first_20, outcomes) if o.passed]
    assert all(o.detail for o in outcomes)  # each failure says why


def test_a_forgery_mixed_with_honest_code_changes_nothing_else(first_20, humaneval_problems, limits):
    """The pool's referees are reused: a hostile program before an honest one leaves no trace."""
    task = first_20[0]
    samples = [(task, FORGERIES["patched builtins"]), (task, humaneval_problems.tasks[task]["canonical_solution"]),
               (task, FORGERIES["forged messages on every descriptor"]), (task, humaneval_problems.tasks[task]["canonical_solution"])]
    assert [o.passed for o in humaneval.score(humaneval_problems, samples, limits, workers=1)] == [False, True, False, True]


def test_helpers_come_from_the_dataset_not_the_completion(humaneval_problems, limits):
    """HumanEval/38's test calls encode_cyclic, defined in the prompt: a completion redefining it
    (so that its own decode_cyclic looks right) does not change what the test uses."""
    task = "HumanEval/38"
    cheat = module_level("def encode_cyclic(s):\n    return s\ndef decode_cyclic(s):\n    return s")
    assert humaneval.score(humaneval_problems, [(task, cheat)], limits)[0].outcome == "failed"
    honest = humaneval.score(humaneval_problems, [(task, humaneval_problems.tasks[task]["canonical_solution"])], limits)[0]
    assert honest.passed
