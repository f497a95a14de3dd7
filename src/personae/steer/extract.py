"""Extract a persona vector from contrastive system prompts, as persona_vectors does.

For every (pos, neg) instruction pair × question of a trait file, the model answers the
question once under the positive system prompt and once under the negative one (batched,
through the response cache, so a re-run regenerates nothing). Then one forward pass over
prompt + response reads the output of every decoder block, and each sample is pooled at
the three positions at once:

- ``response_avg``: mean over the response tokens (the default),
- ``prompt_avg``: mean over the prompt tokens (system prompt, question, chat markup),
- ``prompt_last``: the last prompt token (where the model starts to answer).

``vector[L] = mean(pos) - mean(neg)`` at the output of block ``L`` (``method="mean_diff"``),
or the first principal direction of the paired differences (``method="pca"``).

Block outputs are read with forward hooks on the decoder layers. They equal transformers'
``hidden_states[L + 1]`` for every block but the last: transformers returns the last
block's output after the final norm, while steering hooks add to the raw block output,
so the raw output is what a vector must be read from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from personae.errors import InputError, RunError
from personae.models.base import ChatParams, Message, Model
from personae.models.bundled import bundled_gguf_path, file_sha256
from personae.models.whitebox import encode, read_block_outputs, require_white_box
from personae.runtime import ChatRequest, ProgressReporter, ResponseCache, Runner
from personae.steer.traits import TraitSpec, load_trait
from personae.vectors.file import METHODS, POSITIONS, PersonaVector, save_target

Position = Literal["response_avg", "prompt_last", "prompt_avg"]
Method = Literal["mean_diff", "pca"]


# -- pure math ---------------------------------------------------------------------------

def pool(acts: np.ndarray, prompt_len: int, position: str) -> np.ndarray:
    """Pool one sample's activations ``(n_layers, n_tokens, hidden)`` over the tokens of
    ``position``; tokens ``[0, prompt_len)`` are the prompt, the rest the response.

    >>> acts = np.arange(8, dtype=np.float32).reshape(1, 4, 2)  # tokens: [0,1] [2,3] [4,5] [6,7]
    >>> pool(acts, 2, "prompt_last").tolist(), pool(acts, 2, "response_avg").tolist()
    ([[2.0, 3.0]], [[5.0, 6.0]])
    """
    lo, hi = position_span(acts.shape[1], prompt_len, position)
    return acts[:, lo:hi].mean(axis=1)


def position_span(n_tokens: int, prompt_len: int, position: str) -> tuple[int, int]:
    """The token range ``[lo, hi)`` that ``position`` averages over.

    >>> position_span(10, 4, "prompt_last"), position_span(10, 4, "response_avg")
    ((3, 4), (4, 10))
    """
    if not 0 < prompt_len <= n_tokens:
        raise ValueError(f"prompt length {prompt_len} outside 1..{n_tokens}")
    if position == "response_avg":
        if prompt_len == n_tokens:
            raise ValueError("response_avg needs at least one response token")
        return prompt_len, n_tokens
    if position == "prompt_avg":
        return 0, prompt_len
    if position == "prompt_last":
        return prompt_len - 1, prompt_len
    raise InputError(f"unknown position {position!r}; choose one of {', '.join(POSITIONS)}")


def token_norms(acts: np.ndarray, prompt_len: int, position: str) -> np.ndarray:
    """Mean L2 norm per layer of the tokens ``position`` pools: ``(n_layers,)``.

    >>> token_norms(np.full((1, 3, 4), 0.5), 1, "response_avg").tolist()
    [1.0]
    """
    lo, hi = position_span(acts.shape[1], prompt_len, position)
    return np.linalg.norm(acts[:, lo:hi], axis=-1).mean(axis=1)


def mean_difference(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """``mean(pos) - mean(neg)`` over samples: ``(n, n_layers, hidden)`` → ``(n_layers, hidden)``.

    >>> mean_difference(np.ones((2, 1, 3)), np.zeros((4, 1, 3))).tolist()
    [[1.0, 1.0, 1.0]]
    """
    return pos.mean(axis=0) - neg.mean(axis=0)


def pca_difference(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Per layer, the first principal direction of the paired differences ``pos[i] - neg[i]``,
    pointing the way the mean difference points, scaled to the differences' mean projection
    on it (so its norm is comparable to the mean difference's).

    The differences are not centred: centring would remove the shared shift between the
    two sides, which is the signal, and leave only how that shift varies between samples.

    >>> d = pca_difference(np.array([[[3.0, 0.1]], [[3.0, -0.1]]]), np.zeros((2, 1, 2)))
    >>> np.allclose(d, [[3.0, 0.0]])
    True
    """
    if pos.shape != neg.shape:
        raise ValueError(f"pca needs paired samples: shapes {pos.shape} and {neg.shape}")
    diffs = (pos - neg).astype(np.float64)  # (n, layers, hidden)
    out = np.zeros(diffs.shape[1:], dtype=np.float64)
    for layer in range(diffs.shape[1]):
        d = diffs[:, layer]
        _, _, vt = np.linalg.svd(d, full_matrices=False)
        direction = vt[0]
        if float(d.mean(axis=0) @ direction) < 0:
            direction = -direction
        out[layer] = direction * float((d @ direction).mean())
    return out


def contrast(pos: np.ndarray, neg: np.ndarray, method: str) -> np.ndarray:
    """The vector ``(n_layers, hidden)`` by ``method`` (``mean_diff`` or ``pca``)."""
    if method == "mean_diff":
        return mean_difference(pos, neg)
    if method == "pca":
        return pca_difference(pos, neg)
    raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


# -- reading activations -----------------------------------------------------------------

# -- extraction --------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One generated response: instruction pair ``pair``, question ``question``, ``side``."""

    pair: int
    question: int
    side: Literal["pos", "neg"]
    messages: tuple[Message, ...]
    response: str


@dataclass
class Extraction:
    """What one extraction pass produced: a vector per position, and how it got there."""

    vectors: dict[str, PersonaVector]
    samples: list[Sample] = field(default_factory=list)
    model_calls: int = 0
    cache_hits: int = 0
    dropped_pairs: int = 0  # pairs with an empty response on either side

    def save(self, path: str | Path) -> list[Path]:
        """Write each position's vector: the first to ``path``, the others beside it as
        ``STEM-POSITION.safetensors``. Returns the written tensor paths."""
        names = output_paths(path, list(self.vectors))
        return [vector.save(names[position]) for position, vector in self.vectors.items()]


def output_paths(path: str | Path, positions: Sequence[str]) -> dict[str, Path]:
    """Where `Extraction.save` writes each position's vector (checked: call it before
    extracting, so a bad ``--out`` fails before the model loads).

    >>> {k: p.name for k, p in output_paths("ex.safetensors", ["response_avg",
    ...                                                        "prompt_last"]).items()}
    {'response_avg': 'ex.safetensors', 'prompt_last': 'ex-prompt_last.safetensors'}
    """
    target = save_target(path)
    stem = target.name.removesuffix(".safetensors")
    return {position: target if k == 0 else save_target(
        target.with_name(f"{stem}-{position}.safetensors"))
        for k, position in enumerate(positions)}


def extract_vector(model: Model | str, trait: TraitSpec | str | Path, *,
                   method: Method = "mean_diff", position: Position = "response_avg",
                   **options: Any) -> PersonaVector:
    """One persona vector, ``(n_layers, hidden)``; ``options`` as for `extract_vectors`.

    Example (loads the bundled model, so not run here)::

        v = extract_vector("hf:bundled", "extroverted", n_questions=8, max_tokens=48)
        v.save("extroverted.safetensors")
    """
    return extract_vectors(model, trait, method=method, positions=(position,),
                           **options).vectors[position]


def extract_vectors(
    model: Model | str,
    trait: TraitSpec | str | Path,
    *,
    method: Method = "mean_diff",
    positions: Sequence[str] = POSITIONS,
    n_instructions: int | None = None,
    n_questions: int | None = None,
    max_tokens: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
    cache: ResponseCache | bool = True,
    progress: bool | str = True,
) -> Extraction:
    """Vectors for ``trait`` at each of ``positions``, from one generation pass and one
    activation pass.

    ``cache``: True for the default response cache, False for none, or a `ResponseCache`.
    ``progress``: True (a bar on a terminal, lines otherwise), False, or a
    `ProgressReporter` mode. Greedy decoding (``temperature=0``) by default, so the
    responses, and so the vector, depend only on the model and the trait file.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    for p in positions:
        if p not in POSITIONS:
            raise InputError(f"unknown position {p!r}; choose one of {', '.join(POSITIONS)}")
    spec = trait if isinstance(trait, TraitSpec) else load_trait(trait)
    spec = spec.limit(n_instructions=n_instructions, n_questions=n_questions)
    if method == "pca" and spec.n_pairs < 2:
        raise InputError("pca needs at least 2 contrastive pairs; use more questions or "
                         "--method mean_diff")
    hf = require_white_box(model)
    mode = progress if isinstance(progress, str) else ("auto" if progress else "off")
    params = ChatParams(max_tokens=max_tokens, temperature=temperature, seed=seed)

    samples, calls, hits = _generate(hf, spec, params, cache, mode)
    pooled, norms, dropped = _pool_samples(hf, samples, positions, mode, spec.name)
    if not pooled[positions[0]][0]:
        raise RunError(f"{spec.name}: every response was empty; raise --max-tokens or check "
                       "the model")
    vectors = {}
    for position in positions:
        pos, neg = (np.stack(x) for x in pooled[position])
        vectors[position] = PersonaVector.from_array(
            contrast(pos, neg, method),
            trait=spec.name, model=hf.identity, model_hash=_model_hash(hf),
            position=position, method=method, source=spec.source,
            source_hash=spec.source_hash, n_pairs=len(pos),
            residual_norms=[float(x) for x in np.mean(norms[position], axis=0)],
            extra={"n_instructions": len(spec.instruction),
                   "n_questions": len(spec.questions), "max_tokens": max_tokens,
                   "temperature": temperature, "seed": seed, "dropped_pairs": dropped,
                   "read_from": "decoder block outputs (forward hooks; last block before "
                                "the final norm)"},
        )
    return Extraction(vectors, samples, calls, hits, dropped)


def _generate(model: Any, spec: TraitSpec, params: ChatParams, cache: ResponseCache | bool,
              mode: str) -> tuple[list[Sample], int, int]:
    requests = []
    for i, pair in enumerate(spec.instruction):
        for q, question in enumerate(spec.questions):
            for side, system in (("pos", pair.pos), ("neg", pair.neg)):
                messages = (Message(role="system", content=system),
                            Message(role="user", content=question))
                requests.append(ChatRequest(messages, params, tag=(i, q, side)))
    store = ResponseCache() if cache is True else (cache or None)
    runner = Runner(model, cache=store, progress=mode, label=f"{spec.name}: responses")
    try:
        results = asyncio.run(runner.run_chats(requests))
    finally:
        if cache is True and store is not None:
            store.close()
    failed = [r for r in results if r.completion is None]
    if failed:
        raise RunError(f"{len(failed)} of {len(results)} generations failed (first: "
                       f"{failed[0].error})")
    samples = [Sample(*r.request.tag, messages=r.request.messages,  # type: ignore[misc]
                      response=r.completion.text) for r in results if r.completion]
    return samples, runner.stats.model_calls, runner.stats.cache_hits


def _pool_samples(model: Any, samples: list[Sample], positions: Sequence[str], mode: str,
                  label: str) -> tuple[dict[str, tuple[list, list]], dict[str, list], int]:
    """Pooled activations per position as (pos list, neg list), aligned by pair, and the
    per-sample residual norms per position."""
    encoded = []
    for s in samples:
        prompt = model.render_prompt(list(s.messages))
        encoded.append(encode(model.tokenizer, prompt + s.response, len(prompt)))
    # A pair is kept only when both sides answered: response_avg needs response tokens,
    # and pca needs both halves of every pair.
    by_key = {(s.pair, s.question, s.side): k for k, s in enumerate(samples)}
    keys = sorted({(s.pair, s.question) for s in samples})
    kept = [key for key in keys
            if all(len(encoded[by_key[(*key, side)]][0]) > encoded[by_key[(*key, side)]][1]
                   for side in ("pos", "neg"))]
    index = {by_key[(*key, side)]: (row, side) for row, key in enumerate(kept)
             for side in ("pos", "neg")}
    todo = sorted(index)
    pooled: dict[str, dict[str, list[Any]]] = {p: {"pos": [None] * len(kept),
                                                    "neg": [None] * len(kept)}
                                                for p in positions}
    norms: dict[str, list[np.ndarray]] = {p: [] for p in positions}
    reporter = ProgressReporter(f"{label}: activations", len(todo), mode=mode)
    try:
        seqs = [encoded[k][0] for k in todo]
        for j, acts in read_block_outputs(model, seqs):
            reporter.advance()
            k = todo[j]
            row, side = index[k]
            prompt_len = encoded[k][1]
            for p in positions:
                pooled[p][side][row] = pool(acts, prompt_len, p)
                norms[p].append(token_norms(acts, prompt_len, p))
    finally:
        reporter.close()
    out = {p: (pooled[p]["pos"], pooled[p]["neg"]) for p in positions}
    return out, norms, len(keys) - len(kept)


def _model_hash(model: Any) -> str:
    if getattr(model, "source", None) == "bundled":
        return file_sha256(bundled_gguf_path())
    # base_identity is "hf:NAME:DIGEST:DTYPE" (identity may carry a steering suffix).
    parts = getattr(model, "base_identity", model.identity).split(":")
    return parts[2] if len(parts) >= 4 else ""
