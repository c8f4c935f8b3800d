"""lm-evaluation-harness's model interface on llama-zoo's runner protocol.

``ZooLM`` is an ``lm_eval`` ``TemplateLM``: lm-eval's own code turns its requests into tokens
(``_encode_pair`` moves a context's trailing space to the continuation, an empty context gets the
prefix token), tokenized the way its ``hf`` model does (the tokenizer's default special tokens,
none when the text already starts with BOS; BOS as the prefix, else EOS). The requests then go to
any llama-zoo runner as its own request types:

- ``loglikelihood(context, continuation)``  -> one ``TokenWindow``, summed
- ``loglikelihood_rolling(text)``           -> lm-eval's disjoint rolling windows, each a ``TokenWindow``
- ``generate_until(context, gen_kwargs)``   -> one ``GenerateRequest`` (greedy or sampled, lm-eval's
  stop strings plus EOS, the context left-truncated to leave room for ``max_gen_toks``)

The suite (``lm_eval_tasks``) uses ``requests_for`` and ``response`` so that the loop batches,
stores and resumes; ``ZooLM`` itself also answers lm-eval directly
(``lm_eval.simple_evaluate(model=ZooLM(tokenizer, max_length, runner))``).

``is_greedy`` (whether the continuation is the model's greedy choice) is not computed: backends
return log-probabilities only. Multiple-choice tasks do not use it; a task whose metrics do
(``output_type: loglikelihood``, e.g. LAMBADA's accuracy) is refused by the suite.
"""

from __future__ import annotations

from typing import Any, Sequence

from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import handle_stop_sequences, has_bos_prefix, normalize_gen_kwargs, postprocess_generated_text
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from llama_zoo.backends.base import GenerateRequest, NextTokenRequest, TokenWindow

MAX_GEN_TOKS = 256  # lm-eval's default for generate_until


class ZooLM(TemplateLM):
    def __init__(self, tokenizer, max_length: int, runner=None, stop_token_ids: Sequence[int] = ()):
        """``tokenizer`` None: a text backend, which answers ``generate_until`` only."""
        super().__init__()
        self.tokenizer, self._max_length, self.runner = tokenizer, max_length, runner
        eos = getattr(tokenizer, "eos_token_id", None)
        self.stop_token_ids = tuple(stop_token_ids) or ((eos,) if eos is not None else ())

    def _eos_text(self) -> str | None:
        return self.tokenizer.decode([self.eot_token_id]) if self.tokenizer is not None else None

    # -- tokens, as lm-eval's hf model makes them

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "") or "").replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_: Any) -> list[int]:
        kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        if add_special_tokens is None and has_bos_prefix(string, self.tokenizer.decode([self.prefix_token_id])):
            kwargs["add_special_tokens"] = False
        return self.tokenizer.encode(string, **kwargs)

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt)

    # -- lm-eval requests as runner requests, and runner answers as lm-eval responses

    def requests_for(self, request_type: str, args: tuple, seed: int | None = None) -> tuple[Any, ...]:
        if request_type == "loglikelihood":
            context, continuation = args
            if context == "":
                tokens = self.tok_encode(continuation, add_special_tokens=False)
                ctx, cont = (([self.prefix_token_id], tokens) if self.prefix_token_id != tokens[0]
                             else (tokens[:1], tokens[1:]))
            else:
                ctx, cont = self._encode_pair(context, continuation)
            whole = (ctx + cont)[-(self.max_length + 1):]  # lm-eval keeps the last max_length + 1 tokens
            return (TokenWindow(tuple(whole[:-len(cont)]), tuple(cont)),)
        if request_type == "loglikelihood_rolling":
            (text,) = args
            windows = map(make_disjoint_window, get_rolling_token_windows(
                token_list=self.tok_encode(text), prefix_token=self.prefix_token_id, max_seq_len=self.max_length,
                context_len=1))
            return tuple(TokenWindow(tuple(ctx), tuple(targets)) for ctx, targets in windows)
        if request_type == "generate_until":
            context, gen_kwargs = args
            kwargs = normalize_gen_kwargs(dict(gen_kwargs), MAX_GEN_TOKS)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=self._eos_text())
            new = kwargs.pop("max_gen_toks")
            if new >= self.max_length:
                raise ValueError(f"max_gen_toks {new} leaves no room for a prompt in {self.max_length} tokens")
            # a text backend (an OpenAI-compatible server) tokenizes and truncates on its side
            ids = self.tok_encode(context)[-(self.max_length - new):] if self.tokenizer is not None else []
            sampled = kwargs.get("do_sample") and kwargs.get("temperature", 0.0) > 0
            return (GenerateRequest(tuple(ids), text=context, max_new_tokens=new, stop_strings=tuple(until),
                                    stop_token_ids=self.stop_token_ids,
                                    temperature=float(kwargs["temperature"]) if sampled else 0.0,
                                    top_p=float(kwargs.get("top_p", 1.0) or 1.0) if sampled else 1.0,
                                    seed=seed if sampled else None),)
        raise ValueError(f"lm-eval request type {request_type!r} has no runner request")

    @staticmethod
    def shared_context(windows: Sequence[Any]) -> NextTokenRequest | None:
        """Choices of one token each after one context (multiple choice over letters or numbers)
        as a single request for their next-token log-probabilities: one forward pass instead of one
        per choice, the trick of lm-eval's logits cache; the same numbers."""
        if len(windows) < 2 or not all(isinstance(w, TokenWindow) and len(w.targets) == 1 for w in windows):
            return None
        if any(tuple(w.context) != tuple(windows[0].context) for w in windows):
            return None
        return NextTokenRequest(tuple(windows[0].context), tuple(w.targets[0] for w in windows))

    def response(self, request_type: str, args: tuple, answers: Sequence[Any]) -> Any:
        if request_type == "loglikelihood":
            return float(sum(answers[0])), False  # is_greedy is not computed (see the module's docstring)
        if request_type == "loglikelihood_rolling":
            return float(sum(sum(window) for window in answers))
        generation = answers[0]
        until = handle_stop_sequences(normalize_gen_kwargs(dict(args[1]), MAX_GEN_TOKS).get("until"), eos=self._eos_text())
        # as lm-eval's hf model: the new tokens decoded without special tokens, then cut at the stops
        text = (self.tokenizer.decode(generation.tokens[0], skip_special_tokens=True)
                if generation.tokens and self.tokenizer is not None else generation.texts[0])
        return postprocess_generated_text(text, until, None)

    # -- lm-eval's interface, answered by the runner

    def _answer(self, request_type: str, instances) -> list[Any]:
        from llama_zoo.backends.base import METHOD_FOR

        built = [self.requests_for(request_type, inst.args) for inst in instances]
        flat = [r for requests in built for r in requests]
        replies = getattr(self.runner, METHOD_FOR[type(flat[0])])(flat) if flat else []
        out, at = [], 0
        for inst, requests in zip(instances, built):
            out.append(self.response(request_type, inst.args, replies[at:at + len(requests)]))
            at += len(requests)
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self._answer("loglikelihood", requests)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return self._answer("loglikelihood_rolling", requests)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        return self._answer("generate_until", requests)

    def _loglikelihood_tokens(self, requests, **kwargs):  # TemplateLM's hook; loglikelihood above replaces it
        raise NotImplementedError
