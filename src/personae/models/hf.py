"""The transformers backend (``hf:bundled`` or ``hf:PATH``): white-box access.

Hidden states and forward hooks need the model in PyTorch. ``hf:bundled`` dequantises the
bundled GGUF once (about 35 s) and caches it as safetensors under the personae cache
directory; later loads take well under a second. Requests are batched (left padding), which
is where this backend earns its keep on a CPU.

Steering: ``hf:bundled?steer=FILE:LAYER:COEF[r][,...]`` adds ``COEF × unit vector`` to the
output of decoder block LAYER (from 0) in every call (generation, ``score_choices``, hidden
states); a trailing ``r`` makes COEF relative to the layer's typical residual norm. The syntax
is described in `personae.vectors.spec`. `HFModel.with_steering` gives another steering on the
same loaded weights. The steering is part of the model identity, hence of every cache key.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    TokenLogprob,
)
from personae.models.bundled import bundled_gguf_path, cache_dir, file_sha256
from personae.models.hooks import apply_steering
from personae.models.options import parse_options
from personae.models.registry import BACKENDS
from personae.vectors.spec import load_steer_spec
from personae.vectors.steering import Steering, steering_identity

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")
_IDENTITY_FILES = ("config.json", "generation_config.json", "tokenizer.json",
                   "tokenizer_config.json", "chat_template.jinja", "chat_template.json")

_log = logging.getLogger(__name__)


class HFOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = 16
    n_threads: int | None = None
    dtype: str = "float32"
    steer: str | None = None  # FILE:LAYER:COEF[r][,...]: see personae.vectors.spec


def import_torch() -> Any:
    # Local models only: never let transformers try to reach a model hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import torch
        import transformers
    except ImportError:
        raise InputError("the hf backend needs torch and transformers: install torch==2.13.0, "
                         "then pip install 'personae[local]'") from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    return torch


def bundled_safetensors_dir() -> Path:
    """The bundled GGUF converted to a transformers folder, converting on first use."""
    gguf = bundled_gguf_path()
    target = cache_dir() / "hf" / f"{gguf.stem}-{file_sha256(gguf)[:16]}"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    import_torch()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    # A notice, not an error: Python prints a warning with no handler configured to stderr.
    _log.warning(f"personae: converting {gguf.name} to safetensors under {target.parent} "
                 "(once; about 40 s)")
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                  dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained: rebuild it from its config, then save.
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    fresh = AutoModelForCausalLM.from_config(config, dtype="float32")
    fresh.load_state_dict(loaded.state_dict())
    fresh.tie_weights()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same conversion first
            if not (target / "model.safetensors").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _dir_identity(path: Path) -> str:
    # Weights, config, and the tokenizer files that carry the chat template.
    files = sorted(p for p in path.iterdir()
                   if p.suffix in _WEIGHT_SUFFIXES or p.name in _IDENTITY_FILES)
    sig = ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return hashlib.sha256(sig.encode()).hexdigest()[:16]


@dataclass
class _Weights:
    """The loaded model and tokenizer, shared by an `HFModel` and its `with_steering` copies."""

    model: Any = None
    tok: Any = None


class HFModel(InProcessBackend):
    """A causal LM on transformers.

    >>> model = HFModel("bundled")  # converts and loads on first use
    >>> "hidden_states" in model.capabilities
    True
    """

    backend = "hf"
    capabilities = BACKENDS["hf"].capabilities
    options_type = HFOptions

    def __init__(self, path: str = "bundled", *, steerings: Sequence[Steering] = (),
                 **options: Any) -> None:
        self.options = parse_options(HFOptions, self.backend, options)
        self.batch_size = self.options.batch_size
        self.source = path
        if path == "bundled":
            gguf = bundled_gguf_path()
            self.base_identity = f"hf:{gguf.name}:{file_sha256(gguf)[:16]}:{self.options.dtype}"
        else:
            folder = Path(path)
            if not folder.is_dir() or not (folder / "config.json").is_file():
                raise InputError(f"{path}: not a Hugging Face model folder (no config.json)")
            self.base_identity = (f"hf:{folder.name}:{_dir_identity(folder)}:"
                                  f"{self.options.dtype}")
        # The spec's steering (``?steer=``) first, then what the caller passes as objects.
        self.steerings: tuple[Steering, ...] = (
            *(load_steer_spec(self.options.steer) if self.options.steer else ()), *steerings)
        self.identity = self.base_identity + steering_identity(self.steerings)
        super().__init__()
        self._weights = _Weights()

    def with_steering(self, steerings: Sequence[Steering]) -> HFModel:
        """The same loaded model (weights, tokenizer, worker thread, lock) with other steering
        (replacing this one's; ``[]`` for none) and its own identity. Nothing is reloaded.

        >>> HFModel("bundled").with_steering([]).identity.startswith("hf:")
        True
        """
        twin = copy.copy(self)  # shares _weights, _lock and _executor
        twin.steerings = tuple(steerings)
        twin.options = self.options.model_copy(update={"steer": None})  # not a file spec now
        twin.identity = self.base_identity + steering_identity(twin.steerings)
        return twin

    @contextmanager
    def _steered(self) -> Iterator[None]:
        # Hooks live only for one call, under the shared lock: two models that share the
        # weights never see each other's steering.
        with apply_steering(self._ensure_loaded()[0], self.steerings):
            yield

    def _ensure_loaded(self) -> tuple[Any, Any]:
        w = self._weights
        if w.model is None:
            torch = import_torch()
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if self.options.n_threads:
                torch.set_num_threads(self.options.n_threads)
            folder = bundled_safetensors_dir() if self.source == "bundled" else Path(self.source)
            try:
                tok = AutoTokenizer.from_pretrained(str(folder))
                model = AutoModelForCausalLM.from_pretrained(str(folder),
                                                             dtype=self.options.dtype)
            except (OSError, ValueError) as exc:
                raise RunError(f"transformers could not load {folder}: {exc}") from None
            model.eval()
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            w.model, w.tok = model, tok
        return w.model, w.tok

    @property
    def model(self) -> Any:
        """The underlying ``transformers`` model (loaded on first use)."""
        return self._ensure_loaded()[0]

    @property
    def tokenizer(self) -> Any:
        return self._ensure_loaded()[1]

    def render_prompt(self, messages: Sequence[Message], prefill: str = "") -> str:
        _, tok = self._ensure_loaded()
        text = tok.apply_chat_template([m.model_dump() for m in messages], tokenize=False,
                                       add_generation_prompt=True)
        return text + prefill

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        return (await self.chat_batch([(messages, params)]))[0]

    async def chat_batch(
        self, requests: Sequence[tuple[Sequence[Message], ChatParams]]
    ) -> list[Completion]:
        return await self._run(self._chat_batch_sync, requests)

    def _chat_batch_sync(
        self, requests: Sequence[tuple[Sequence[Message], ChatParams]]
    ) -> list[Completion]:
        # Requests with different sampling parameters cannot share one generate() call.
        # (The seed and sample index are in the params, so each group shares one RNG stream.)
        groups: dict[ChatParams, list[int]] = {}
        for i, (_, params) in enumerate(requests):
            groups.setdefault(params, []).append(i)
        out: list[Completion | None] = [None] * len(requests)
        with self._lock, self._steered():
            for params, idx in groups.items():
                prompts = [self.render_prompt(requests[i][0]) for i in idx]
                for i, c in zip(idx, self._generate(prompts, params), strict=True):
                    out[i] = c
        return [c for c in out if c is not None]

    def _generate(self, prompts: list[str], params: ChatParams) -> list[Completion]:
        torch = import_torch()
        model, tok = self._ensure_loaded()
        start = time.perf_counter()
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_tokens, "do_sample": sample,
                                  "pad_token_id": tok.pad_token_id}
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
        if params.top_logprobs:
            kwargs.update(output_scores=True, return_dict_in_generate=True)
        # One RNG stream per generate() call: sampled rows depend on their batch-mates, so
        # sampled hf output is reproducible for the same batch; greedy output always is.
        torch.manual_seed(params.effective_seed)
        with torch.inference_mode():
            gen = model.generate(**enc, **kwargs)
        sequences = gen.sequences if params.top_logprobs else gen
        new = sequences[:, enc["input_ids"].shape[1]:]
        elapsed = time.perf_counter() - start
        results = []
        for row in range(len(prompts)):
            ids = new[row].tolist()
            eos_at = next((k for k, t in enumerate(ids) if t in _eos_ids(model, tok)), None)
            kept = ids[:eos_at] if eos_at is not None else ids
            text = tok.decode(kept, skip_special_tokens=True)
            finish = "stop" if eos_at is not None or len(kept) < params.max_tokens else "length"
            for s in params.stop:
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
            logprobs = None
            if params.top_logprobs:
                logprobs = _top_logprobs(torch, tok, gen.scores, row, kept, params.top_logprobs)
            results.append(Completion(
                text=text, finish_reason=finish,
                prompt_tokens=int(enc["attention_mask"][row].sum()),
                completion_tokens=len(kept), logprobs=logprobs, model=self.identity,
                latency_s=elapsed,
            ))
        return results

    def _score_sync(self, messages: Sequence[Message], choices: list[str],
                    prefill: str) -> ChoiceScores:
        torch = import_torch()
        with self._lock, self._steered():
            model, tok = self._ensure_loaded()
            text = self.render_prompt(messages, prefill)
            prompt = tok(text, add_special_tokens=False)["input_ids"]
            seqs = [tok(c, add_special_tokens=False)["input_ids"] for c in choices]
            if all(len(s) == 1 for s in seqs):  # e.g. Likert digits: one pass over the prompt
                with torch.inference_mode():
                    last = model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
                logp = torch.log_softmax(last, dim=-1)
                return ChoiceScores.from_logprobs(choices, [float(logp[s[0]]) for s in seqs])
            width = len(prompt) + max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, s in enumerate(seqs):  # right padding: positions line up with the prompt
                row = prompt + s
                ids[r, : len(row)] = torch.tensor(row)
                mask[r, : len(row)] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            scores = []
            for r, s in enumerate(seqs):
                total = sum(float(logp[r, len(prompt) - 1 + j, t]) for j, t in enumerate(s))
                scores.append(total)
        return ChoiceScores.from_logprobs(choices, scores)

    def hidden_states(self, messages: Sequence[Message], prefill: str = "") -> np.ndarray:
        """Residual-stream activations, shape ``(n_layers + 1, n_tokens, hidden)``.

        Row 0 is the embedding output; row ``L + 1`` is the output of block ``L`` (layers are
        numbered from 0, the personae convention), except the last row, which transformers
        gives after the model's final norm. `personae.steer` reads raw block outputs with
        hooks instead. On a steered model, row ``L + 1`` of a
        steered block ``L`` includes the added vector.
        """
        torch = import_torch()
        with self._lock, self._steered():
            model, tok = self._ensure_loaded()
            enc = tok(self.render_prompt(messages, prefill), return_tensors="pt",
                      add_special_tokens=False)
            with torch.inference_mode():
                out = model(**enc, output_hidden_states=True)
        return torch.stack(out.hidden_states)[:, 0].float().numpy()


def _eos_ids(model: Any, tok: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    return ids


def _top_logprobs(torch: Any, tok: Any, scores: Sequence[Any], row: int, kept: list[int],
                  k: int) -> list[TokenLogprob]:
    out = []
    for step, token_id in enumerate(kept):
        lp = torch.log_softmax(scores[step][row].float(), dim=-1)
        top = torch.topk(lp, k)
        out.append(TokenLogprob(
            token=tok.decode([token_id]), logprob=float(lp[token_id]),
            top={tok.decode([int(i)]): float(v) for v, i in zip(top.values, top.indices,
                                                                  strict=True)},
        ))
    return out
