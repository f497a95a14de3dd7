"""Monitor a persona vector: project activations on it, per token and per response.

The projection of a token's activation ``a`` at layer ``L`` is ``a · v[L] / ||v[L]||``: how far
the residual stream points along the trait direction. A response's score is the mean over its
own tokens (not the prompt's), which equals projecting the mean response activation, as
persona_vectors does.

Transcripts: a JSON list of chat messages (``[{"role", "content"}, ...]``), a JSON object
holding one under ``conversation`` or ``messages`` (the Assistant Axis persona-drift format:
its ``persona`` field describes the simulated *user* and is not shown to the model), a JSON
list of such conversations, or JSONL with one message or one conversation per line.
A conversation longer than the model's context is scored in overlapping windows; each turn
records the first message its window starts from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from personae.errors import InputError, RunError
from personae.models.base import Message, Model
from personae.runtime import ProgressReporter
from personae.steer.extract import encode, read_block_outputs, require_white_box
from personae.steer.vector import PersonaVector

# Tokens kept free of the context for chat markup that window planning does not count.
_MARGIN = 16


def project(activations: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Per-token projection of ``activations`` ``(n_tokens, hidden)`` on the unit vector
    along ``direction`` ``(hidden,)``.

    >>> project(np.array([[3.0, 4.0], [1.0, 0.0]]), np.array([2.0, 0.0])).tolist()
    [3.0, 1.0]
    """
    d = np.asarray(direction, dtype=np.float64)
    norm = float(np.linalg.norm(d))
    if norm == 0.0:
        raise InputError("cannot project on a zero vector")
    return np.asarray(activations, dtype=np.float64) @ (d / norm)


@dataclass(frozen=True)
class Projection:
    """Per-token projections of one response and their mean (NaN when it has no tokens)."""

    per_token: np.ndarray
    mean: float

    @classmethod
    def of(cls, activations: np.ndarray, direction: np.ndarray, start: int = 0,
           end: int | None = None) -> Projection:
        """Project ``activations[start:end]`` (the response tokens) on ``direction``.

        >>> Projection.of(np.array([[9.0], [1.0], [3.0]]), np.array([1.0]), start=1).mean
        2.0
        """
        values = project(activations[start:end], direction)
        return cls(values, float(values.mean()) if len(values) else math.nan)


def score_responses(model: Model | str, vector: PersonaVector, layer: int,
                    items: Sequence[tuple[Sequence[Message], str]]) -> list[Projection]:
    """Projection of each response's tokens at ``layer``, read with the response as the
    assistant's reply to ``messages`` (batched). The response text is tokenised as part of
    the whole prompt + response, as the model saw it.
    """
    hf = require_white_box(model)
    direction = vector.unit(layer)
    encoded = []
    for messages, response in items:
        prompt = hf.render_prompt(list(messages))
        encoded.append(encode(hf.tokenizer, prompt + response, len(prompt)))
    out: list[Projection | None] = [None] * len(items)
    for i, acts in read_block_outputs(hf, [ids for ids, _ in encoded], [layer]):
        out[i] = Projection.of(acts[0], direction, start=encoded[i][1])
    return [p for p in out if p is not None]


class TurnScore(BaseModel):
    """One assistant turn of a transcript: its mean projection and per-token values."""

    conversation: int  # index of the conversation in the file
    turn: int  # index of the message in its conversation
    assistant_turn: int  # 0 for the first assistant message, 1 for the next...
    layer: int
    mean: float | None  # None when the message has no tokens
    n_tokens: int
    per_token: list[float]
    tokens: list[str]
    # First message of the window this turn was scored in (a leading system message is
    # always seen too): 0 unless the conversation was longer than the context.
    context_start: int = 0


def score_transcript(model: Model | str, vector: PersonaVector, path: str | Path, layer: int, *,
                     max_context: int | None = None,
                     progress: bool | str = True) -> list[TurnScore]:
    """Score every assistant turn of the transcript(s) in ``path`` on ``vector`` at ``layer``.

    Example (loads the bundled model, so not run here)::

        for t in score_transcript(load_model("hf:bundled"), load_vector("v.safetensors"),
                                  "chat.json", layer=15):
            print(t.turn, t.mean)
    """
    hf = require_white_box(model)
    vector.check_layer(layer)
    direction = vector.unit(layer)
    conversations = load_transcript(path)
    limit = max_context or int(getattr(hf.model.config, "max_position_embeddings", 4096))
    mode = progress if isinstance(progress, str) else ("auto" if progress else "off")
    total = sum(1 for c in conversations for m in c if m.role == "assistant")
    reporter = ProgressReporter("monitor: turns", total, mode=mode)
    scores: list[TurnScore] = []
    try:
        for c, messages in enumerate(conversations):
            for turn in _score_conversation(hf, messages, layer, direction, limit, path):
                scores.append(turn.model_copy(update={"conversation": c}))
                reporter.advance()
    finally:
        reporter.close()
    return scores


def _score_conversation(hf: Any, messages: list[Message], layer: int, direction: np.ndarray,
                        limit: int, path: str | Path) -> list[TurnScore]:
    tok = hf.tokenizer
    head = messages[:1] if messages[0].role == "system" else []
    body = messages[len(head):]
    # Per-message token counts from one tokenisation of the whole conversation.
    text = _render(tok, messages)
    bounds = [len(_render(tok, messages[: j + 1])) for j in range(len(messages))]
    starts = [s for s, _ in tok(text, add_special_tokens=False,
                                return_offsets_mapping=True)["offset_mapping"]]
    ends = [int(np.searchsorted(starts, b, side="left")) for b in bounds]
    counts = np.diff([0, *ends]).tolist()
    body_counts = counts[len(head):]
    if head:
        header = counts[0]
    else:  # the template's default system prompt, if it adds one, precedes every window
        header = len(tok(_render(tok, messages[:1]), add_special_tokens=False)["input_ids"])
        header -= len(tok(messages[0].content, add_special_tokens=False)["input_ids"])
        body_counts[0] = max(1, body_counts[0] - header)
    if sum(counts) <= limit:
        windows = [(0, len(body), [j for j, m in enumerate(body) if m.role == "assistant"])]
    else:
        try:
            windows = plan_windows(body_counts, [m.role == "assistant" for m in body],
                                   limit - header - _MARGIN, first_index=len(head))
        except ValueError as exc:
            raise InputError(f"{path}: {exc} (the model's context is {limit} tokens)") from None
    out: list[TurnScore] = []
    n_head = len(head)
    for start, end, scored in windows:
        out.extend(_score_window(
            hf, head + body[start:end], targets=[n_head + j - start for j in scored],
            turns=[n_head + j for j in scored], layer=layer, direction=direction,
            context_start=n_head + start if start else 0))
    assistant_index = {j: k for k, j in enumerate(
        j for j, m in enumerate(messages) if m.role == "assistant")}
    return [t.model_copy(update={"assistant_turn": assistant_index[t.turn]}) for t in out]


def _score_window(hf: Any, window: list[Message], *, targets: list[int], turns: list[int],
                  layer: int, direction: np.ndarray, context_start: int) -> list[TurnScore]:
    """Score ``window[j]`` for each ``j`` in ``targets``; ``turns`` are their indices in the
    whole conversation."""
    tok = hf.tokenizer
    text = _render(tok, window)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [s for s, _ in enc["offset_mapping"]]
    ids = list(enc["input_ids"])
    ((_, acts),) = read_block_outputs(hf, [ids], [layer])
    out = []
    for j, turn in zip(targets, turns, strict=True):
        lo = _content_start(tok, window, j, text)
        a = int(np.searchsorted(starts, lo, side="left"))
        b = int(np.searchsorted(starts, lo + len(window[j].content), side="left"))
        values = project(acts[0][a:b], direction)
        out.append(TurnScore(
            conversation=0, turn=turn, assistant_turn=0, layer=layer,
            mean=float(values.mean()) if len(values) else None, n_tokens=b - a,
            per_token=[float(x) for x in values], tokens=[tok.decode([t]) for t in ids[a:b]],
            context_start=context_start,
        ))
    return out


def _content_start(tok: Any, window: list[Message], j: int, text: str) -> int:
    """Character offset of message ``j``'s content in the rendered ``text``."""
    content = window[j].content
    if j > 0:
        lo = len(tok.apply_chat_template([m.model_dump() for m in window[:j]], tokenize=False,
                                         add_generation_prompt=True))
        if text[lo: lo + len(content)] == content:
            return lo
    # A template that rewrites earlier turns: find the content after the previous message.
    after = len(_render(tok, window[:j])) if j > 0 else 0
    lo = text.find(content, after)
    if lo < 0:
        raise RunError(f"the chat template changed message {j}'s text; cannot locate its "
                       "tokens")
    return lo


def _render(tok: Any, messages: Sequence[Message]) -> str:
    if not messages:
        return ""
    return tok.apply_chat_template([m.model_dump() for m in messages], tokenize=False,
                                   add_generation_prompt=False)


def plan_windows(counts: Sequence[int], scored: Sequence[bool], budget: int, *,
                 first_index: int = 0) -> list[tuple[int, int, list[int]]]:
    """Split messages with token ``counts`` into windows ``[start, end)`` of at most
    ``budget`` tokens. Each message with ``scored`` set is scored in exactly one window,
    the one where it comes last or nearly so: every window after the first starts with
    up to half the budget of earlier messages as history (from a non-scored message,
    e.g. a user turn, where it can). ``first_index`` numbers the messages in errors.

    >>> plan_windows([4, 4, 4, 4, 4, 4], [False, True] * 3, 12)
    [(0, 3, [1]), (2, 5, [3]), (4, 6, [5])]
    """
    n = len(counts)
    windows: list[tuple[int, int, list[int]]] = []
    start, covered = 0, 0
    while covered < n:
        end, total = start, 0
        while end < n and total + counts[end] <= budget:
            total += counts[end]
            end += 1
        if end <= covered:
            if end == start:
                raise ValueError(f"message {start + first_index} has {counts[start]} tokens, "
                                 f"more than fit in a window ({budget})")
            start = covered  # not even the next message fits after this history: drop it
            continue
        windows.append((start, end, [j for j in range(covered, end) if scored[j]]))
        covered = end
        if end == n:
            break
        history, nxt = 0, end
        while nxt > start + 1 and history + counts[nxt - 1] <= budget // 2:
            history += counts[nxt - 1]
            nxt -= 1
        while nxt < end and scored[nxt]:
            nxt += 1
        start = nxt
    return windows


def load_transcript(path: str | Path) -> list[list[Message]]:
    """The conversations in a transcript file (see the module docstring for the formats).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.json"
    >>> _ = p.write_text('{"conversation": [{"role": "user", "content": "Hi"},'
    ...                  ' {"role": "assistant", "content": "Hello!"}]}')
    >>> [[m.role for m in c] for c in load_transcript(p)]
    [['user', 'assistant']]
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such transcript file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a UTF-8 text file") from None
    if p.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append((f"{p}:{n}", _json(line, f"{p}:{n}")))
        if not rows:
            raise InputError(f"{p}: empty transcript")
        if all(isinstance(r, dict) and "role" in r for _, r in rows):
            conversations = [(str(p), [r for _, r in rows])]
        else:
            conversations = [(where, _messages_of(r, where)) for where, r in rows]
    else:
        raw = _json(text, str(p))
        if isinstance(raw, list) and raw and all(isinstance(x, dict) and "role" in x
                                                 for x in raw):
            conversations = [(str(p), raw)]
        elif isinstance(raw, list):
            conversations = [(f"{p}[{i}]", _messages_of(x, f"{p}[{i}]"))
                             for i, x in enumerate(raw)]
        else:
            conversations = [(str(p), _messages_of(raw, str(p)))]
    if not conversations:
        raise InputError(f"{p}: no conversations")
    return [_validate(raw_msgs, where) for where, raw_msgs in conversations]


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from None


def _messages_of(raw: Any, where: str) -> list[Any]:
    if isinstance(raw, list):
        return raw
    if isinstance(raw, dict):
        for key in ("conversation", "messages"):
            if isinstance(raw.get(key), list):
                return raw[key]
    raise InputError(f"{where}: expected a list of chat messages or an object with "
                     "'conversation' or 'messages'")


def _validate(raw: list[Any], where: str) -> list[Message]:
    out = []
    for i, m in enumerate(raw):
        try:
            out.append(Message.model_validate(m))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "message"
            raise InputError(f"{where}: message {i}: {field}: {err['msg']}") from None
    if not any(m.role == "assistant" for m in out):
        raise InputError(f"{where}: no assistant messages to score")
    return out
