"""The llama.cpp backend (``bundled`` and ``llamacpp:PATH.gguf``): generation and logprobs.

llama.cpp runs one request at a time per model instance, so ``max_concurrency`` is 1 and the
calls run in a worker thread to keep the event loop free. Top logprobs of generated tokens
need a context built with ``logits_all=True``, which is slower, so that second context is
only created when a request asks for logprobs.

Steering: ``bundled?steer=FILE:LAYER:COEF[r][,...]`` (the syntax of the hf backend, see
`personae.vectors.spec`; FILE may also be a llama.cpp control vector ``.gguf``) is applied as a
llama.cpp control vector (``llama_set_adapter_cvec``) to every context this model creates,
so all calls are steered. llama.cpp cannot steer block 0. The steering is part of the model
identity, hence of every cache key.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from personae.errors import InputError, RunError
from personae.models.base import (
    ChatParams,
    ChoiceScores,
    Completion,
    InProcessBackend,
    Message,
    logprobs_from_openai,
)
from personae.models.bundled import bundled_gguf_path, file_sha256
from personae.models.options import parse_options
from personae.models.registry import BACKENDS
from personae.vectors.gguf import cvec_buffer
from personae.vectors.spec import load_steer_spec
from personae.vectors.steering import Steering, layer_deltas, steering_identity


class LlamaCppOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    verbose: bool = False
    steer: str | None = None  # FILE:LAYER:COEF[r][,...]: see personae.vectors.spec
    # llama.cpp's extra weight buffers (AMX tiles, repacked layouts). Off by default: a build
    # compiled for a CPU that advertises AMX dies with SIGILL, no error, wherever the kernel or
    # VM does not enable AMX (seen on our own machines); the bundled Q4_1 model gains nothing
    # from them here. Turn on where the hardware is known to run them.
    extra_buffers: bool = False


_PARAMS_LOCK = threading.Lock()


@contextmanager
def model_params(*, extra_buffers: bool) -> Iterator[None]:
    """While inside, ``llama_cpp.Llama`` loads models with ``use_extra_bufts=extra_buffers``.

    ``Llama()`` has no argument for it: it reads ``llama_model_default_params()`` and sets the
    fields it knows, so the defaults it reads are adjusted for the duration of one load.
    """
    import llama_cpp.llama_cpp as lib

    with _PARAMS_LOCK:
        original = lib.llama_model_default_params

        def adjusted() -> Any:
            params = original()
            if hasattr(params, "use_extra_bufts"):
                params.use_extra_bufts = extra_buffers
            return params

        lib.llama_model_default_params = adjusted
        try:
            yield
        finally:
            lib.llama_model_default_params = original


class LlamaCppModel(InProcessBackend):
    """A GGUF model on llama-cpp-python.

    >>> sorted(c.value for c in LlamaCppModel("bundled").capabilities)
    ['chat', 'logprobs', 'score_choices', 'steering']
    """

    backend = "llamacpp"
    capabilities = BACKENDS["llamacpp"].capabilities
    options_type = LlamaCppOptions

    def __init__(self, path: str = "bundled", *, steerings: Sequence[Steering] = (),
                 **options: Any) -> None:
        self.options = parse_options(LlamaCppOptions, self.backend, options)
        self.path = bundled_gguf_path() if path == "bundled" else Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such GGUF file")
        with open(self.path, "rb") as fh:
            if fh.read(4) != b"GGUF":
                raise InputError(f"{self.path}: not a GGUF file")
        self.name = "bundled" if path == "bundled" else self.path.stem
        # The spec's steering (``?steer=``) first, then what the caller passes as objects.
        self.steerings = (*(load_steer_spec(self.options.steer) if self.options.steer else ()),
                          *steerings)
        if any(s.layer == 0 for s in self.steerings):
            raise InputError("llama.cpp cannot steer block 0 (its control vectors start at "
                             "block 1); use the hf backend")
        self.identity = (f"llamacpp:{self.path.name}:{file_sha256(self.path)[:16]}"
                         + steering_identity(self.steerings))
        super().__init__()
        self._llm: Any = None
        self._llm_logprobs: Any = None

    def _load(self, logits_all: bool) -> Any:
        try:
            import llama_cpp
        except ImportError:
            raise InputError("the llamacpp backend needs llama-cpp-python: "
                             "pip install 'personae[local]'") from None
        o = self.options
        try:
            with model_params(extra_buffers=o.extra_buffers):
                llm = llama_cpp.Llama(
                    model_path=str(self.path), n_ctx=o.n_ctx, n_batch=o.n_batch,
                    n_threads=o.n_threads or os.cpu_count(), logits_all=logits_all,
                    verbose=o.verbose,
                )
        except (ValueError, RuntimeError) as exc:
            raise RunError(f"llama.cpp could not load {self.path}: {exc}") from None
        if self.steerings:
            self._set_control_vector(llama_cpp, llm)
        return llm

    def _set_control_vector(self, llama_cpp: Any, llm: Any) -> None:
        n_layer = int(llama_cpp.llama_model_n_layer(llm._model.model))
        n_embd = int(llm.n_embd())
        try:
            buf = cvec_buffer(layer_deltas(self.steerings), n_layer, n_embd)
        except InputError as exc:
            raise InputError(f"steering {steering_identity(self.steerings)}: {exc}") from None
        # The buffer starts at block 1 (row L - 1 is added after block L); apply to 1..last.
        rc = llama_cpp.llama_set_adapter_cvec(
            llm._ctx.ctx, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), buf.size, n_embd,
            1, n_layer - 1)
        if rc != 0:
            raise RunError(f"llama.cpp refused the control vector for {self.path.name} "
                           f"(code {rc})")
        llm.reset()  # nothing cached may predate the steering

    def llama(self, *, logits_all: bool = False) -> Any:
        """The underlying ``llama_cpp.Llama`` (loaded on first use)."""
        if logits_all:
            if self._llm_logprobs is None:
                self._llm_logprobs = self._load(True)
            return self._llm_logprobs
        if self._llm is None:
            self._llm = self._load(False)
        return self._llm

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        return await self._run(self._chat_sync, messages, params)

    def _chat_sync(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        start = time.perf_counter()
        with self._lock:
            llm = self.llama(logits_all=params.top_logprobs > 0)
            extra = {"logprobs": True, "top_logprobs": params.top_logprobs} \
                if params.top_logprobs else {}
            try:
                out = llm.create_chat_completion(
                    messages=[m.model_dump() for m in messages],
                    max_tokens=params.max_tokens, temperature=params.temperature,
                    top_p=params.top_p, seed=params.effective_seed,
                    stop=list(params.stop) or None, **extra,
                )
            except ValueError as exc:  # e.g. prompt longer than the context window
                raise RunError(f"llama.cpp ({self.name}): {exc}") from None
        choice = out["choices"][0]
        return Completion(
            text=choice["message"]["content"] or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=out["usage"]["prompt_tokens"],
            completion_tokens=out["usage"]["completion_tokens"],
            logprobs=logprobs_from_openai(choice.get("logprobs")),
            model=self.identity,
            latency_s=time.perf_counter() - start,
        )

    def render_prompt(self, messages: Sequence[Message], prefill: str = "") -> str:
        """The exact text the model sees: the GGUF's own chat template, then ``prefill``."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self.llama()
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise RunError(f"{self.path.name} has no chat template")
        vocab = llm._model
        fmt = Jinja2ChatFormatter(
            template=template,
            eos_token=vocab.token_get_text(vocab.token_eos()),
            bos_token=vocab.token_get_text(vocab.token_bos()),
        )
        return fmt(messages=[m.model_dump() for m in messages]).prompt + prefill

    def _score_sync(self, messages: Sequence[Message], choices: list[str],
                    prefill: str) -> ChoiceScores:
        import llama_cpp

        with self._lock:
            llm = self.llama()
            prompt = llm.tokenize(self.render_prompt(messages, prefill).encode(),
                                  add_bos=False, special=True)
            if len(prompt) >= llm.n_ctx():
                raise RunError(f"prompt of {len(prompt)} tokens exceeds n_ctx={llm.n_ctx()}")
            n_vocab = llm.n_vocab()

            def last_logprobs() -> np.ndarray:
                ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
                logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float64)
                peak = logits.max()
                return logits - peak - math.log(np.exp(logits - peak).sum())

            # Reuse the cached prefix (e.g. the same system prompt across questionnaire items).
            shared = 0
            for a, b in zip(llm.input_ids[: llm.n_tokens], prompt, strict=False):
                if a != b:
                    break
                shared += 1
            llm.n_tokens = min(shared, len(prompt) - 1)
            llm.eval(prompt[llm.n_tokens:])
            first = last_logprobs()
            scores = []
            for choice in choices:
                toks = llm.tokenize(choice.encode(), add_bos=False, special=False)
                total, lp = 0.0, first
                llm.n_tokens = len(prompt)
                for i, tok in enumerate(toks):
                    total += float(lp[tok])
                    if i + 1 < len(toks):
                        llm.eval([tok])
                        lp = last_logprobs()
                scores.append(total)
            llm.n_tokens = len(prompt)
            llm._requires_eval = True  # our evals changed the logits: generation must replay
        return ChoiceScores.from_logprobs(choices, scores)

