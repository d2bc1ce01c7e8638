"""The reading model's worker: llama.cpp in a child process, scoring closed questions by the log-probabilities of
their answer options. Run as `python -m rag.llm.reader_worker --model M.gguf`; speaks JSON lines on stdin/stdout.

A request is {"id", "items": [{"system": text, "doc": text, "query": text, "options": ["Yes", "No"]}, …]}: for each
item, a conversation of the system message and one user message (doc then query), rendered with the model's own
chat template, and the log-probability (over the whole vocabulary) of each of its options' first token as the model's
reply. An item without options only reads its doc into the state cache (warm-up).

The doc (the instructions and a passage) comes first so that its KV cache can be kept: the worker saves each doc's
sequence state after prefilling it once (an LRU bounded in bytes), so a later question about the same passage
prefills only its own few tokens. Consecutive items also reuse the longest token prefix they share. The reply
carries llama.cpp's own time for the tokens it prefilled: the floor the caller compares its wall time with.

A child process, so a crash or a runaway allocation in llama.cpp cannot take the app down with it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import sys
import time
from collections import OrderedDict

import numpy as np

STATE_CACHE_BYTES = 768 << 20
_SPLIT = "\x1e"  # where the user message's doc ends and its query begins (never reaches the model)
_CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    top = float(logits.max())
    return logits - (top + math.log(float(np.exp(logits - top).sum())))


class Worker:
    """One llama.cpp context, the tokens its KV cache holds, and the saved states of the docs it has read."""

    def __init__(self, model: str, threads: int, ctx: int, cache_bytes: int = STATE_CACHE_BYTES) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llama_cpp.Llama(model_path=model, n_ctx=ctx, n_threads=threads, n_threads_batch=threads,
                                   n_batch=512, logits_all=False, verbose=False)
        self.ctx = self.llm._ctx.ctx
        self.n_vocab = self.llm.n_vocab()
        self.held: list[int] = []  # the tokens whose keys and values the context holds, in order
        self.states: OrderedDict[str, tuple[list[int], bytes]] = OrderedDict()
        self.cache_bytes, self.cached_bytes = cache_bytes, 0
        self.tokens_cache: dict[str, list[int]] = {}
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        template = self.llm.metadata.get("tokenizer.chat_template") or _CHATML
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self.template = env.from_string(template)
        self.specials = {"bos_token": self.llm._model.token_get_text(self.llm.token_bos()),
                         "eos_token": self.llm._model.token_get_text(self.llm.token_eos())}

    def render(self, system: str, doc: str, query: str) -> tuple[str, str]:
        """The conversation as the model's template writes it, cut where the query begins."""
        text = self.template.render(messages=[{"role": "system", "content": system},
                                              {"role": "user", "content": doc + "\n\n" + _SPLIT + query}],
                                    add_generation_prompt=True, **self.specials)
        head, _, tail = text.partition(_SPLIT)
        return head, tail

    def tokens(self, text: str) -> list[int]:
        got = self.tokens_cache.get(text)
        if got is None:
            got = self.llm.tokenize(text.encode(), add_bos=False, special=True)
            if len(self.tokens_cache) > 4096:
                self.tokens_cache.clear()
            self.tokens_cache[text] = got
        return got

    def _eval_from(self, tokens: list[int]) -> int:
        """Make the context hold tokens, prefilling only what it does not already hold; returns tokens prefilled."""
        keep = 0
        for a, b in zip(self.held, tokens, strict=False):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(tokens) - 1)  # the last token is always evaluated: its logits are the answer
        self.llm.n_tokens = keep
        self.llm.eval(tokens[keep:])  # removes the cache beyond keep first
        self.held = list(tokens)
        return len(tokens) - keep

    def _restore(self, doc: str, doc_tokens: list[int]) -> bool:
        """Load a saved doc state into the context (True), unless the context already shares more with it."""
        saved = self.states.get(doc)
        if saved is None or self.held[: len(doc_tokens)] == doc_tokens:
            return False
        self.states.move_to_end(doc)
        data = saved[1]
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        if self.lib.llama_state_seq_set_data(self.ctx, buf, len(data), 0) == 0:
            self.held = []
            return False
        self.llm.n_tokens = len(doc_tokens)
        self.llm.input_ids[: len(doc_tokens)] = doc_tokens
        self.held = list(doc_tokens)
        return True

    def _save(self, doc: str, doc_tokens: list[int]) -> None:
        """Keep the state of the context holding exactly doc_tokens (LRU, bounded in bytes)."""
        self.lib.llama_memory_seq_rm(self.lib.llama_get_memory(self.ctx), 0, len(doc_tokens), -1)
        size = self.lib.llama_state_seq_get_size(self.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = self.lib.llama_state_seq_get_data(self.ctx, buf, size, 0)
        data = bytes(buf[:n])
        self.states[doc] = (doc_tokens, data)
        self.cached_bytes += len(data)
        while self.cached_bytes > self.cache_bytes and len(self.states) > 1:
            _, (_, old) = self.states.popitem(last=False)
            self.cached_bytes -= len(old)
        self.held = list(doc_tokens)
        self.llm.n_tokens = len(doc_tokens)

    def score(self, items: list[dict]) -> dict:
        """Score each item's options; an item with none only reads its doc into the state cache (warm-up)."""
        self.lib.llama_perf_context_reset(self.ctx)
        t0 = time.perf_counter()
        out, prefilled, restored = [], 0, 0
        for item in items:
            doc, query = self.render(str(item.get("system", "")), str(item["doc"]), str(item["query"]))
            ids = [self.tokens(str(o))[0] for o in item.get("options") or []]
            doc_tokens, query_tokens = self.tokens(doc), self.tokens(query)
            if len(doc_tokens) + len(query_tokens) >= self.llm.n_ctx():
                raise ValueError(f"a prompt of {len(doc_tokens) + len(query_tokens)} tokens does not fit the "
                                 f"context of {self.llm.n_ctx()}")
            if self._restore(doc, doc_tokens):
                restored += 1
            elif doc not in self.states and len(doc_tokens) > 1:
                prefilled += self._eval_from(doc_tokens)
                self._save(doc, doc_tokens)
            if not ids:
                out.append([])
                continue
            prefilled += self._eval_from(doc_tokens + query_tokens)
            logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.n_vocab,)).astype(np.float64)
            logp = _log_softmax(logits)
            out.append([round(float(logp[i]), 5) for i in ids])
        perf = self.lib.llama_perf_context(self.ctx)
        return {"logprobs": out, "prefill_tokens": prefilled, "restored": restored,
                "wall_ms": round((time.perf_counter() - t0) * 1000, 1),
                "llama_ms": round(perf.t_p_eval_ms + perf.t_eval_ms, 1),
                "llama_tokens": int(perf.n_p_eval + perf.n_eval)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ctx", type=int, default=2048)
    args = parser.parse_args()
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies may reach the reply channel
    try:
        worker = Worker(args.model, args.threads, args.ctx)
    except Exception as exc:  # noqa: BLE001 -- reported to the parent as one line
        out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        out.flush()
        return
    out.write(json.dumps({"ready": True, "n_ctx": worker.llm.n_ctx()}) + "\n")
    out.flush()
    for line in sys.stdin:
        request: dict = {}
        try:
            request = json.loads(line)
            reply = worker.score(list(request["items"]))
        except Exception as exc:  # noqa: BLE001 -- one bad request must not end the worker
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        reply["id"] = request.get("id") if isinstance(request, dict) else None
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
