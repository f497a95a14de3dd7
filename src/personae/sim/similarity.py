"""Similarity and echo of each turn (MiniLM cosines), computed while the simulation runs and
stored, so its summary needs no model.

- ``similarity``: the turn against its speaker's persona description;
- ``echo``: the turn against the partner's turn just before it (None when the turn before is
  the speaker's own, or there is none).
"""

from __future__ import annotations

from collections.abc import Mapping

from personae.judge import describe
from personae.models.embeddings import embed
from personae.sim.agents import Agent, Turn

TurnKey = tuple[str, int]  # (conversation id, turn index)


def scored(agent: Agent | None, t: Turn) -> bool:
    """Whether a turn is measured: a persona's own, non-empty, not scripted."""
    return agent is not None and agent.persona is not None and not t.scripted and bool(t.text)


def similarity_values(conversations: Mapping[str, list[Turn]],
                      agents: Mapping[str, Mapping[str, Agent]]
                      ) -> dict[TurnKey, dict[str, float | None]]:
    """``{"similarity", "echo"}`` of every scored turn, by (conversation, index).

    Loads the embedding model (`personae.models.embeddings`); raises what it raises when it
    is not installed.

    Example (loads the embedding model, so not run here)::

        values = similarity_values(plan.turns(store), plan.agents)
    """
    keys = [(cid, t.index) for cid, turns in conversations.items() for t in turns if t.text]
    texts = [t.text for turns in conversations.values() for t in turns if t.text]
    # Keyed by content: two files may hold different personas under one id.
    personas = {a.persona.content_hash(): describe(a.persona)
                for by_id in agents.values() for a in by_id.values() if a.persona is not None}
    if not texts:
        return {}
    vectors = embed(texts + list(personas.values()))
    vecs = dict(zip(keys, vectors[: len(texts)], strict=True))
    persona_vecs = dict(zip(personas, vectors[len(texts):], strict=True))
    out: dict[TurnKey, dict[str, float | None]] = {}
    for cid, turns in conversations.items():
        for i, t in enumerate(turns):
            agent = agents.get(cid, {}).get(t.speaker)
            if not scored(agent, t):
                continue
            assert agent is not None and agent.persona is not None  # scored() checked it
            here = vecs[(cid, t.index)]
            prev = turns[i - 1] if i > 0 else None
            other = (vecs.get((cid, prev.index)) if prev is not None
                     and prev.speaker != t.speaker else None)
            out[(cid, t.index)] = {
                "similarity": float(here @ persona_vecs[agent.persona.content_hash()]),
                "echo": float(here @ other) if other is not None else None}
    return out
