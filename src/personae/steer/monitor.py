"""Monitor a persona vector: project activations on it, per token and per response.

The projection of a token's activation ``a`` at layer ``L`` is ``a · v[L] / ||v[L]||``: how far
the residual stream points along the trait direction. A response's score is the mean over its
own tokens (not the prompt's), which equals projecting the mean response activation, as
persona_vectors does.

Transcripts: a JSON list of chat messages (``[{"role", "content"}, ...]``), a JSON object
holding one under ``conversation`` or ``messages`` (the Assistant Axis persona-drift format:
its ``persona`` field describes the simulated *user* and is not shown to the model), a JSON
list of such conversations, or JSONL with one message or one conversation per line.

``personae simulate``'s ``transcripts.jsonl`` (one row per conversation: ``conversation_id``,
``agents``, ``turns``) is scored per agent, in that agent's own view as the simulation shows
it: its lines are ``assistant`` messages, everyone else's are ``user`` messages prefixed
``Name: ``, and a conversation the agent opens starts with the simulation's opener line. The
file holds no system prompts, so the views have none. Each row then names the conversation
id, the agent, and the turn's ``index`` in the conversation.

A conversation longer than the model's context is scored in overlapping windows; each turn
records the first message its window starts from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from personae.errors import InputError, RunError, describe_validation
from personae.models.base import Message, Model
from personae.models.whitebox import read_block_outputs, require_white_box
from personae.runtime import ProgressReporter
from personae.vectors.file import PersonaVector
from personae.vectors.projection import project

# Tokens kept free of the context for chat markup that window planning does not count.
_MARGIN = 16
# The line a simulated agent's view starts with when the agent speaks first. The same text as
# personae.sim.agents.OPENER (a test checks): run kinds do not import each other.
SIM_OPENER = "(You speak first: open the conversation.)"


class TurnScore(BaseModel):
    """One scored turn of a transcript: its mean projection and per-token values."""

    conversation: int  # index of the conversation in the file
    # For a `personae simulate` transcript: the conversation's id and the agent whose view
    # was scored (None for a chat transcript, where the assistant is the one scored).
    conversation_id: str | None = None
    agent: str | None = None
    # Where the turn is in its conversation: the message's index in a chat transcript, the
    # turn's ``index`` in a simulate transcript.
    turn: int
    # The speaker's own count, from 0: 0 for its first message (simulate's ``turn`` - 1).
    assistant_turn: int
    layer: int
    mean: float | None  # None when the message has no tokens
    n_tokens: int
    per_token: list[float]
    tokens: list[str]
    # Where the window this turn was scored in starts (same numbering as ``turn``; a leading
    # system message is always seen too): 0 unless the conversation was longer than the context.
    context_start: int = 0


@dataclass(frozen=True)
class TranscriptView:
    """One conversation as the scored speaker saw it, and which of its messages get a row.

    ``positions[j]`` is where message ``j`` comes from in the file's conversation (a
    message's index, or a simulate turn's ``index``; the first one for merged lines, -1 for a
    line the view adds); ``own_turns[j]`` is the speaker's own count for a scored message.
    """

    messages: tuple[Message, ...]
    scored: tuple[bool, ...]
    positions: tuple[int, ...]
    own_turns: tuple[int | None, ...]
    conversation: int
    conversation_id: str | None = None
    agent: str | None = None

    @property
    def n_scored(self) -> int:
        return sum(self.scored)

    @classmethod
    def of_chat(cls, messages: Sequence[Message], conversation: int = 0) -> TranscriptView:
        """Every assistant message of a chat is scored.

        >>> v = TranscriptView.of_chat([Message(role="user", content="Hi"),
        ...                             Message(role="assistant", content="Hello")])
        >>> v.scored, v.own_turns
        ((False, True), (None, 0))
        """
        scored = tuple(m.role == "assistant" for m in messages)
        counts = np.cumsum(scored) - 1
        return cls(tuple(messages), scored, tuple(range(len(messages))),
                   tuple(int(c) if f else None for c, f in zip(counts, scored, strict=True)),
                   conversation)


def score_transcript(model: Model | str, vector: PersonaVector,
                     path: str | Path | Sequence[TranscriptView], layer: int, *,
                     max_context: int | None = None, agents: Sequence[str] | None = None,
                     progress: bool | str = True) -> list[TurnScore]:
    """Score every assistant turn of the transcript(s) in ``path`` on ``vector`` at ``layer``.

    ``path`` may also be views already read with `load_views` (so a caller can check the
    file before loading the model). ``agents`` picks the agents of a simulate transcript
    (default: all of them, each in its own view).

    Example (loads the bundled model, so not run here)::

        for t in score_transcript(load_model("hf:bundled"), load_vector("v.safetensors"),
                                  "chat.json", layer=15):
            print(t.turn, t.mean)
    """
    vector.check_layer(layer)
    views = (load_views(path, agents=agents) if isinstance(path, str | Path)
             else list(path))
    where = str(path) if isinstance(path, str | Path) else "transcript"
    hf = require_white_box(model)
    direction = vector.unit(layer)
    limit = max_context or int(getattr(hf.model.config, "max_position_embeddings", 4096))
    mode = progress if isinstance(progress, str) else ("auto" if progress else "off")
    reporter = ProgressReporter("monitor: turns", sum(v.n_scored for v in views), mode=mode)
    scores: list[TurnScore] = []
    try:
        for view in views:
            for turn in _score_conversation(hf, view, layer, direction, limit, where):
                scores.append(turn)
                reporter.advance()
    finally:
        reporter.close()
    return scores


def _score_conversation(hf: Any, view: TranscriptView, layer: int, direction: np.ndarray,
                        limit: int, path: str) -> list[TurnScore]:
    tok = hf.tokenizer
    messages = list(view.messages)
    head = messages[:1] if messages[0].role == "system" else []
    body = messages[len(head):]
    body_scored = view.scored[len(head):]
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
        windows = [(0, len(body), [j for j, f in enumerate(body_scored) if f])]
    else:
        try:
            windows = plan_windows(body_counts, body_scored, limit - header - _MARGIN,
                                   first_index=len(head))
        except ValueError as exc:
            raise InputError(f"{path}: {exc} (the model's context is {limit} tokens)") from None
    out: list[TurnScore] = []
    n_head = len(head)
    for start, end, scored in windows:
        out.extend(_score_window(
            hf, head + body[start:end], targets=[n_head + j - start for j in scored],
            turns=[n_head + j for j in scored], layer=layer, direction=direction,
            context_start=n_head + start if start else 0))

    def position(j: int) -> int:
        return max(0, view.positions[j])  # a line the view added stands for the start

    return [t.model_copy(update={
        "conversation": view.conversation, "conversation_id": view.conversation_id,
        "agent": view.agent, "turn": view.positions[t.turn],
        "assistant_turn": view.own_turns[t.turn],
        "context_start": position(t.context_start) if t.context_start else 0})
        for t in out]


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
    """The conversations in a transcript file (see the module docstring for the formats);
    a simulate transcript gives one conversation per (conversation, agent) view.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.json"
    >>> _ = p.write_text('{"conversation": [{"role": "user", "content": "Hi"},'
    ...                  ' {"role": "assistant", "content": "Hello!"}]}')
    >>> [[m.role for m in c] for c in load_transcript(p)]
    [['user', 'assistant']]
    """
    return [list(v.messages) for v in load_views(path)]


def load_views(path: str | Path, *, agents: Sequence[str] | None = None
               ) -> list[TranscriptView]:
    """Read and check a transcript file: every view to score, nothing loaded but the file.

    ``agents`` picks agents of a `personae simulate` transcript (default: every agent, each
    in its own view); naming an agent the file does not hold is an error.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "transcripts.jsonl"
    >>> _ = p.write_text('{"conversation_id": "c1", "agents": [{"id": "ana", "name": "Ana"},'
    ...     ' {"id": "bo", "name": "Bo"}], "turns": [{"index": 0, "turn": 1, "speaker": "ana",'
    ...     ' "name": "Ana", "text": "Hi Bo."}, {"index": 1, "turn": 1, "speaker": "bo",'
    ...     ' "name": "Bo", "text": "Hello!"}]}')
    >>> [(v.agent, [(m.role, m.content) for m in v.messages]) for v in load_views(p)][1]
    ('bo', [('user', 'Ana: Hi Bo.'), ('assistant', 'Hello!')])
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
    else:
        raw = _json(text, str(p))
        rows = ([(f"{p}[{i}]", x) for i, x in enumerate(raw)] if isinstance(raw, list)
                else [(str(p), raw)])
        if not rows:
            raise InputError(f"{p}: no conversations")
    if any(_is_simulate_row(r) for _, r in rows):
        return _simulate_views(p, rows, agents)
    if agents:
        raise InputError(f"{p}: choosing agents needs a `personae simulate` transcripts.jsonl; "
                         "this is a chat transcript (its assistant turns are scored)")
    if all(isinstance(r, dict) and "role" in r for _, r in rows):
        conversations = [(str(p), [r for _, r in rows])]  # one message per line / item
    else:
        conversations = [(where, _messages_of(r, where)) for where, r in rows]
    return [TranscriptView.of_chat(_validate(raw_msgs, where), c)
            for c, (where, raw_msgs) in enumerate(conversations)]


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
            problem = describe_validation(exc, whole="message")
            raise InputError(f"{where}: message {i}: {problem}") from None
    if not any(m.role == "assistant" for m in out):
        raise InputError(f"{where}: no assistant messages to score")
    return out


# --- `personae simulate` transcripts ------------------------------------------------------
# The row format of personae.sim.summary.transcript_rows, read here without importing it.


class _SimAgent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    name: str


class _SimTurn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    index: int = Field(ge=0)
    turn: int = Field(ge=1)  # the speaker's own count, from 1
    speaker: str = Field(min_length=1)
    name: str
    text: str


class _SimConversation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conversation_id: str = Field(min_length=1)
    agents: list[_SimAgent] = Field(min_length=1)
    turns: list[_SimTurn]


def _is_simulate_row(raw: Any) -> bool:
    # The Assistant Axis format has a "turns" count, simulate rows a list of turns.
    return isinstance(raw, dict) and isinstance(raw.get("turns"), list) and "agents" in raw


def _simulate_views(p: Path, rows: list[tuple[str, Any]],
                    agents: Sequence[str] | None) -> list[TranscriptView]:
    views: list[TranscriptView] = []
    present: dict[str, None] = {}
    for c, (where, raw) in enumerate(rows):
        if not _is_simulate_row(raw):
            raise InputError(f"{where}: not a `personae simulate` transcript row (expected "
                             "conversation_id, agents and turns, like the rows before it)")
        try:
            conv = _SimConversation.model_validate(raw)
        except ValidationError as exc:
            raise InputError(f"{where}: {describe_validation(exc, whole='message')}") from None
        ids = [a.id for a in conv.agents]
        present.update(dict.fromkeys(ids))
        turns = sorted(conv.turns, key=lambda t: t.index)
        for t in turns:
            if t.speaker not in ids:
                raise InputError(f"{where}: turn {t.index}: speaker {t.speaker!r} is not one "
                                 f"of the conversation's agents ({', '.join(ids)})")
        for agent in ids:
            if agents and agent not in agents:
                continue
            view = simulate_view(turns, agent, conversation=c,
                                 conversation_id=conv.conversation_id)
            if view.n_scored:
                views.append(view)
    missing = [a for a in agents or () if a not in present]
    if missing:
        raise InputError(f"{p}: no agent {missing[0]!r} in this transcript (agents: "
                         f"{', '.join(present)})")
    if not views:
        raise InputError(f"{p}: no turns with text to score")
    return views


def simulate_view(turns: Sequence[Any], agent: str, *, conversation: int = 0,
                  conversation_id: str | None = None) -> TranscriptView:
    """``agent``'s view of simulated ``turns`` (objects with index, turn, speaker, name,
    text), as the simulation shows it to the agent minus the system prompt: its own lines
    are ``assistant`` messages (scored when not empty), the others' lines ``user`` messages
    ``"Name: text"``, consecutive ones merged. (The simulation also merges two consecutive
    lines of the agent itself; here they stay apart, so each gets its own row.)
    """
    rows: list[tuple[str, str, int, bool, int | None]] = []
    for t in turns:
        if t.speaker == agent:
            rows.append(("assistant", t.text or "…", t.index, bool(t.text.strip()),
                         t.turn - 1))
            continue
        line = f"{t.name}: {t.text or '…'}"
        if rows and rows[-1][0] == "user":  # several others spoke in a row: one message
            role, content, position, _, _ = rows[-1]
            rows[-1] = (role, f"{content}\n\n{line}", position, False, None)
        else:
            rows.append(("user", line, t.index, False, None))
    if not rows or rows[0][0] == "assistant":
        # Chat templates want a user message first; the simulation gives this one.
        rows.insert(0, ("user", SIM_OPENER, -1, False, None))
    return TranscriptView(
        messages=tuple(Message(role=r[0], content=r[1]) for r in rows),  # type: ignore[arg-type]
        scored=tuple(r[3] for r in rows), positions=tuple(r[2] for r in rows),
        own_turns=tuple(r[4] for r in rows), conversation=conversation,
        conversation_id=conversation_id, agent=agent)
