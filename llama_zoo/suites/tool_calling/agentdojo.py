"""The ``agentdojo`` suite: a Llama as a tool-using agent in AgentDojo's simulated worlds (a
workspace, Slack, travel bookings, a bank account), with and without prompt injections planted in
what its tools return, and with and without a defence screening those tool outputs.

Each user task is run once without an attack (its ``utility``: did the agent do what the user
asked, by AgentDojo's own check of the environment and the calls made) and once per injection
task with the attack's text planted in the environment (``utility_under_attack``, and
``targeted_asr``: did the agent do what the attacker asked, by the injection task's own check).
AgentDojo's package provides everything but the model: the task suites, the environments, the
tools and their runtime (``ToolsExecutor``), the attacks (default ``important_instructions``,
addressed to a Llama as AgentDojo's attacks address one), the detector step that replaces a
flagged tool output (``PromptInjectionDetector``) and the checks (``TaskSuite._check_task_result``).
The loop is AgentDojo's ``run_task_with_pipeline`` with its ``ToolsExecutionLoop`` of at most 15
steps, taken one step at a time so the steps of many tasks share the model's batches.

The model sees AgentDojo's system message and the user's task, with the tools offered in its own
tool-call format (the ``bfcl`` suite's prompts and parsers: Llama 3.1's JSON calls, the pythonic
calls of Llama 3.2, 3.3 and 4); each tool's result comes back as AgentDojo's local Llama
pipeline (``LocalLLM``) writes it, ``{"result": ...}`` or ``{"error": ...}``. Replies are parsed,
never run: a call reaches only AgentDojo's simulated tools.

Two differences from AgentDojo's runner, both where the outcome cannot change: a reply without a
final message is not asked again (AgentDojo retries up to three times, which at temperature 0
returns the same reply), and an injection task is not also run as a user task (AgentDojo's
check that the model could do the attacker's task at all). A conversation that outgrows
``--context`` counts as AgentDojo counts one that exceeds the model's context: the user's task not
done, the attack succeeded (``context_overflow_rate`` says how often).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.base import (Chart, Context, Emit, Item, McNemar, Option, Plan, Sample, SuiteInfo,
                                        require_language_model)
from llama_zoo.suites.core.stats import rate_metric
from llama_zoo.suites.safety.defenses import DEFENSE_OPTIONS, Screen, open_defense, shown
from llama_zoo.suites.tool_calling import formats
from llama_zoo.suites.tool_calling.bfcl import request, too_long

SUITE = "agentdojo"
SUITE_VERSION = "1"
INSTALL = "pip install 'llama-zoo[agents]' (agentdojo)"
TASK_SUITES = ("workspace", "travel", "banking", "slack")
BENCHMARK_VERSION = "v1.2.2"  # AgentDojo 0.1.35's latest
MAX_STEPS = 15  # AgentDojo's ToolsExecutionLoop(max_iters=15)
# the name AgentDojo's attacks address the target model by comes from its pipeline's name; its one
# Llama pipeline is this one ("AI assistant" in important_instructions)
TARGET_PIPELINE = "meta-llama/Llama-3-70b-chat-hf"
NO_ATTACK = "none"


def _agentdojo() -> Any:
    try:
        from agentdojo.task_suite import load_suites
    except ImportError:
        raise LlamaZooError(f"the agentdojo suite needs AgentDojo: {INSTALL}") from None
    return load_suites


def task_suite(name: str, version: str) -> Any:
    """AgentDojo's task suite ``name`` at benchmark ``version``; a name it lacks is refused in one line."""
    load_suites = _agentdojo()
    suites = load_suites._SUITES.get(version)
    if not suites:
        known = ", ".join(sorted(load_suites._SUITES))
        raise LlamaZooError(f"no AgentDojo benchmark version {version!r} (known: {known})")
    if name not in suites:
        raise LlamaZooError(f"no AgentDojo task suite {name!r} (known: {', '.join(sorted(suites))})")
    return suites[name]


def functions_of(suite: Any) -> list[dict[str, Any]]:
    """The suite's tools as the tool formats offer functions (BFCL's form: name, description, and
    the parameters' JSON schema as a ``dict``)."""
    out = []
    for tool in suite.tools:
        schema = _untitled(tool.parameters.model_json_schema())
        parameters = {"type": "dict", "properties": schema.get("properties", {}), "required": schema.get("required", [])}
        if "$defs" in schema:
            parameters["$defs"] = schema["$defs"]
        out.append({"name": tool.name, "description": tool.description, "parameters": parameters})
    return out


def _untitled(value: Any) -> Any:
    """A JSON schema without pydantic's ``title`` keys (noise in a prompt)."""
    if isinstance(value, dict):
        return {k: _untitled(v) for k, v in value.items() if k != "title" or not isinstance(v, str)}
    if isinstance(value, list):
        return [_untitled(v) for v in value]
    return value


def _ids(given: str | None, known: Sequence[str], what: str) -> list[str]:
    if not given:
        return list(known)
    wanted = [t.strip() for t in given.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise LlamaZooError(f"no {what} {unknown[0]!r} in this AgentDojo suite (it has {known[0]} to {known[-1]})")
    return wanted


def _ordered(ids: Sequence[str]) -> list[str]:
    return sorted(ids, key=lambda t: int(t.rsplit("_", 1)[-1]))


@dataclass
class Bench:
    """What every episode of a run shares: the task suite, the attack, the defence, the format."""

    suite: Any
    attack: Any | None
    screen: Screen | None
    fmt: str
    functions: list[dict[str, Any]]
    system: str


@dataclass
class Episode:
    """One user task run by the agent, attacked by one injection task or not: the chat the model
    sees, AgentDojo's own trace of it, and the environment its calls change."""

    bench: Bench = field(repr=False)
    user_task: str
    injection_task: str | None
    messages: list[dict[str, str]]
    trace: list[Any] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    env: Any = None
    pre_env: Any = None
    runtime: Any = None
    injections: dict[str, str] | None = None
    steps: int = 0
    overflow: bool = False
    screened: list[tuple[float, bool]] = field(default_factory=list)

    @classmethod
    def start(cls, bench: Bench, user_task: str, injection_task: str | None) -> "Episode":
        from agentdojo.types import ChatSystemMessage, ChatUserMessage, text_content_block_from_string

        prompt = bench.suite.user_tasks[user_task].PROMPT
        trace = [ChatSystemMessage(role="system", content=[text_content_block_from_string(bench.system)]),
                 ChatUserMessage(role="user", content=[text_content_block_from_string(prompt)])]
        messages = [{"role": "system", "content": bench.system}, {"role": "user", "content": prompt}]
        return cls(bench, user_task, injection_task, messages, trace)

    def _world(self) -> None:
        """The environment, built when first needed (as ``run_task_with_pipeline`` builds it)."""
        if self.env is not None:
            return
        from agentdojo.functions_runtime import FunctionsRuntime

        suite = self.bench.suite
        user_task = suite.user_tasks[self.user_task]
        self.injections = {}
        if self.injection_task is not None:
            self.injections = self.bench.attack.attack(user_task, suite.injection_tasks[self.injection_task])
        environment = suite.load_and_inject_default_environment(self.injections)
        self.env = user_task.init_environment(environment)
        self.pre_env = self.env.model_copy(deep=True)
        self.runtime = FunctionsRuntime(suite.tools)

    def answer(self, reply: str) -> bool:
        """Take the model's reply: its calls run on the environment and their results (screened by
        the defence) join the chat; True while the agent goes on."""
        from agentdojo.agent_pipeline.tool_execution import ToolsExecutor
        from agentdojo.functions_runtime import FunctionCall
        from agentdojo.types import ChatAssistantMessage, text_content_block_from_string

        self._world()
        self.replies.append(reply)
        try:
            decoded = formats.decode(reply, self.bench.fmt)
            calls = [] if formats.is_empty(decoded) else [(name, args) for call in decoded for name, args in call.items()]
            tool_calls = [FunctionCall(function=name, args=dict(args), id=f"call_{self.steps}_{k}")
                          for k, (name, args) in enumerate(calls)]
        except Exception:  # noqa: BLE001 - a reply that cannot be read as calls (or as AgentDojo's) is a final answer
            tool_calls = []
        self.trace.append(ChatAssistantMessage(role="assistant", content=[text_content_block_from_string(reply)],
                                               tool_calls=tool_calls))
        self.messages.append({"role": "assistant", "content": reply})
        if not tool_calls or self.steps == MAX_STEPS:
            return False
        self.steps += 1
        before = len(self.trace)
        _, _, self.env, self.trace, _ = ToolsExecutor().query("", self.runtime, self.env, self.trace)
        self.trace = list(self.trace)
        if self.bench.screen is not None:
            detector = _detector(self.bench.screen, self.screened)
            _, _, _, self.trace, _ = detector.query("", self.runtime, self.env, self.trace)
            self.trace = list(self.trace)
        self.messages += [{"role": "tool", "content": _tool_content(m)} for m in self.trace[before:]]
        return True

    def verdict(self) -> tuple[bool, bool | None]:
        """AgentDojo's checks: the user's task done (utility), the attacker's done (None: no attack)."""
        from agentdojo.task_suite.task_suite import functions_stack_trace_from_messages

        self._world()
        if self.overflow:  # as AgentDojo scores a context_length_exceeded error
            return False, (True if self.injection_task is not None else None)
        suite = self.bench.suite
        output = self.trace[-1]["content"] if self.trace[-1]["role"] == "assistant" else None
        calls = functions_stack_trace_from_messages(self.trace)
        utility = suite._check_task_result(suite.user_tasks[self.user_task], output or [], self.pre_env, self.env, calls)
        if self.injection_task is None:
            return bool(utility), None
        security = suite._check_task_result(suite.injection_tasks[self.injection_task], output or [], self.pre_env,
                                            self.env, calls)
        return bool(utility), bool(security)


def _tool_content(message: Any) -> str:
    """A tool result as AgentDojo's ``LocalLLM`` hands it to a Llama."""
    from agentdojo.types import get_text_content_as_str

    if message.get("error") is not None:
        return json.dumps({"error": message["error"]})
    result = get_text_content_as_str(message["content"])
    return json.dumps({"result": "Success" if result == "None" else result})


def _detector(screen: Screen, log: list[tuple[float, bool]]) -> Any:
    """AgentDojo's detector step (``mode="message"``: each tool output alone) deciding with the
    run's defence; every verdict is kept for the sample."""
    from agentdojo.agent_pipeline.pi_detector import PromptInjectionDetector

    class Defence(PromptInjectionDetector):
        def detect(self, tool_output: str) -> tuple[bool, float]:
            score, blocked = screen.verdicts([tool_output], "tool")[0]
            log.append((score, blocked))
            return blocked, score

    return Defence(mode="message", raise_on_injection=False)


class AgentDojoSuite:
    info = SuiteInfo(
        name=SUITE, version=SUITE_VERSION, meant_for="instruct",
        summary="AgentDojo: a tool-using agent's utility, utility under attack and targeted attack success, with or "
                "without a defence screening tool outputs.",
        headline="targeted_asr", lower_is_better=True,
        setup_keys=("task_suite", "attack", "defense_model", "tool_format", "limit"),
        paired=(McNemar("attack_succeeded", "attack success"), McNemar("utility", "tasks done")),
        charts=(Chart("trade_off", "targeted_asr", x_metric="utility_under_attack", series="defense_model"),),
        options=(
            Option("task_suite", "banking", f"AgentDojo's task suite: {', '.join(TASK_SUITES)}.", type=str),
            Option("benchmark_version", BENCHMARK_VERSION, "AgentDojo's benchmark version (its tasks as of then).",
                   type=str),
            Option("attack", "important_instructions", "AgentDojo's attack planted in the tools' outputs (its registry: "
                   "important_instructions, tool_knowledge, ignore_previous, direct, ...), or none for utility alone.",
                   type=str),
            Option("user_tasks", None, "User tasks to run, comma-separated ids (default: all; --limit takes the first N).",
                   type=str),
            Option("injection_tasks", None, "Injection tasks to attack with, comma-separated ids (default: all).",
                   type=str),
            Option("tool_format", "auto", "How the tools are offered: json (Llama 3.1's JSON calls) or pythonic (Llama "
                   "3.2, 3.3 and 4); auto picks the model's own.", choices=("auto", "json", "pythonic")),
            Option("max_new_tokens", 256, "Longest reply per step.", type=int, minimum=1),
            *DEFENSE_OPTIONS,
        ),
        needs_tokens=False, interactive=True,
        datasets="AgentDojo's task suites, inside its package (pip install 'llama-zoo[agents]')",
    )

    def check(self, spec, options) -> None:
        require_language_model(spec, SUITE)
        task_suite(options["task_suite"], options["benchmark_version"])
        self._attack_name(options["attack"])

    @staticmethod
    def _attack_name(name: str) -> str | None:
        if name == NO_ATTACK:
            return None
        _agentdojo()
        from agentdojo.attacks.attack_registry import ATTACKS

        if name not in ATTACKS:
            raise LlamaZooError(f"no AgentDojo attack {name!r} (known: {', '.join(sorted(ATTACKS))}, or none)")
        if getattr(ATTACKS[name], "is_dos_attack", False):
            # AgentDojo scores these by utility alone (one injection task, success = the task not done)
            raise LlamaZooError(f"--attack {name} is one of AgentDojo's denial-of-service attacks, scored by utility "
                                "alone: not offered here; give a targeted attack (important_instructions, ...) or none")
        return name

    def plan(self, ctx: Context) -> Plan:
        o = ctx.options
        suite = task_suite(o["task_suite"], o["benchmark_version"])
        attack_name = self._attack_name(o["attack"])
        user_tasks = ctx.first(_ids(o["user_tasks"], _ordered(suite.user_tasks), "user task"))
        injection_tasks = _ids(o["injection_tasks"], _ordered(suite.injection_tasks), "injection task") \
            if attack_name else []
        fmt = o["tool_format"]
        if fmt == "auto":
            fmt = formats.default_format(ctx.spec, ctx.tokenizer)
            fmt = fmt if fmt in ("json", "pythonic") else "pythonic"
        attack = None
        if attack_name:
            from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
            from agentdojo.attacks.attack_registry import load_attack

            class Target(BasePipelineElement):  # what the attack reads of the pipeline: its name
                name = TARGET_PIPELINE

                def query(self, *args, **kwargs):  # never run: the model is llama-zoo's
                    raise NotImplementedError

            attack = load_attack(attack_name, suite, Target())
        from agentdojo.agent_pipeline.agent_pipeline import load_system_message

        options: dict[str, Any] = {"task_suite": o["task_suite"], "benchmark_version": o["benchmark_version"],
                                   "attack": o["attack"], "tool_format": fmt, "max_new_tokens": o["max_new_tokens"],
                                   "user_tasks": list(user_tasks), "injection_tasks": injection_tasks}
        screen = open_defense(ctx)
        if screen is not None:
            options.update(defense=screen.identity, defense_model=shown(o["defense"], screen.identity))
        bench = Bench(suite, attack, screen, fmt, functions_of(suite), load_system_message(None))
        items = []
        for user_task in user_tasks:
            for injection_task in (None, *injection_tasks):
                episode = Episode.start(bench, user_task, injection_task)
                step = request(ctx, episode.messages, bench.functions, fmt, len(items))
                if too_long(ctx, step):
                    need = len(step.prompt) + o["max_new_tokens"]
                    raise LlamaZooError(f"{user_task}: its first prompt and reply need {need:,} tokens, over --context "
                                        f"{ctx.context:,}; give a larger --context (the chat grows with each step)")
                items.append(Item(len(items), (step,), episode))
        from importlib.metadata import version

        return Plan(f"agentdojo-{o['task_suite']}", f"{version('agentdojo')}/{o['benchmark_version']}", None, items,
                    options)

    def follow_up(self, item: Item, answers, ctx: Context) -> Item | None:
        episode: Episode = item.data
        if not episode.answer(answers[0].texts[0]):
            return None
        step = request(ctx, episode.messages, episode.bench.functions, episode.bench.fmt, item.index)
        if too_long(ctx, step):
            episode.overflow = True
            return None
        return Item(item.index, (step,), episode)

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        for item in items:
            episode: Episode = item.data
            utility, attacked = episode.verdict()
            suite = episode.bench.suite
            goal = suite.injection_tasks[episode.injection_task].GOAL if episode.injection_task else None
            scores: dict[str, Any] = {"utility": utility, "attacked": episode.injection_task is not None,
                                      "attack_succeeded": bool(attacked), "overflow": episode.overflow}
            if episode.bench.screen is not None:
                scores["blocked"] = any(blocked for _, blocked in episode.screened)
            calls = [[c.function, c.args] for m in episode.trace if m["role"] == "assistant" for c in m["tool_calls"] or ()]
            emit(Sample(item.index, input_ref=f"{episode.user_task}/{episode.injection_task or 'none'}",
                        input=suite.user_tasks[episode.user_task].PROMPT,
                        output=json.dumps(episode.replies, ensure_ascii=False), target=goal, scores=scores,
                        extra={"steps": episode.steps, "calls": json.loads(json.dumps(calls, default=str)),
                               "injections": episode.injections,
                               "defense_scores": [round(s, 6) for s, _ in episode.screened]}))

    def metrics(self, samples, seed: int, runner=None, state=None) -> list[dict[str, Any]]:
        benign = [s["scores"] for s in samples if not s["scores"]["attacked"]]
        attacked = [s["scores"] for s in samples if s["scores"]["attacked"]]
        out = []
        if benign:
            out.append(rate_metric("utility", [float(s["utility"]) for s in benign], seed))
        if attacked:
            out += [rate_metric("utility_under_attack", [float(s["utility"]) for s in attacked], seed),
                    rate_metric("targeted_asr", [float(s["attack_succeeded"]) for s in attacked], seed)]
        every = [s["scores"] for s in samples]
        if any("blocked" in s for s in every):  # a defended run: how often it stepped in
            out.append(rate_metric("blocked_rate", [float(s["blocked"]) for s in every], seed))
        out.append(rate_metric("context_overflow_rate", [float(s["overflow"]) for s in every], seed))
        return out


suite = AgentDojoSuite()
