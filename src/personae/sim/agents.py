"""Who takes part in a conversation, and what each of them sees.

Every agent sees the conversation from its own side (SPASM's egocentric context projection):
its own lines are the ``assistant`` turns, everyone else's are ``user`` turns with the
speaker's name in front. Only the last ``window`` turns are shown; the agent's system prompt
(its persona) is always kept, however long the conversation gets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from personae.models import Message
from personae.persona import Persona

Role = Literal["persona", "user"]
END_SIGNAL = "[END]"
OPENER = "(You speak first: open the conversation.)"


@dataclass(frozen=True)
class Agent:
    """One participant. ``script`` holds fixed lines (a scripted user) instead of a model.

    >>> Agent("sam", "Sam", "user", "You are Sam.").label
    'Sam (user)'
    """

    id: str
    name: str
    role: Role
    system: str
    persona: Persona | None = None
    script: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role})"


class Turn(BaseModel):
    """One utterance. ``index`` is its 0-based position in the conversation; ``turn`` is the
    speaker's own 1-based count (its k-th utterance), the x axis of the drift curves."""

    model_config = ConfigDict(frozen=True)

    conversation_id: str
    index: int
    turn: int
    speaker: str
    name: str
    role: Role
    text: str
    end_signal: bool = False
    started: float = 0.0
    latency_s: float = 0.0
    finish_reason: str = "stop"
    completion_tokens: int = 0
    cached: bool = False
    scripted: bool = False


def scene_prompt(agent_system: str, *, others: Sequence[str], goal: str | None) -> str:
    """The agent's persona prompt plus what the conversation is about and how to end it."""
    who = ", ".join(others) if others else "someone"
    lines = [agent_system.rstrip(), "", f"You are in a conversation with {who}. Stay in "
             "character the whole time and answer as yourself, in one short message (a few "
             "sentences)."]
    if goal:
        lines.append(f"Your goal in this conversation: {goal}")
    lines.append(f"When the conversation has come to a natural end, finish your message with "
                 f"{END_SIGNAL}.")
    return "\n".join(lines)


def egocentric_view(agent: Agent, turns: Sequence[Turn], *, window: int) -> list[Message]:
    """The messages ``agent`` is given to write its next turn.

    >>> a = Agent("ana", "Ana", "persona", "You are Ana.")
    >>> t = [Turn(conversation_id="c", index=0, turn=1, speaker="bo", name="Bo", role="user",
    ...           text="Hi Ana!")]
    >>> [(m.role, m.content) for m in egocentric_view(a, t, window=8)][1:]
    [('user', 'Bo: Hi Ana!')]
    """
    shown = list(turns[-window:]) if window > 0 else list(turns)
    messages = [Message(role="system", content=agent.system)]
    if len(shown) < len(turns):
        messages.append(Message(role="user", content="(The earlier part of the conversation "
                                "is not shown.)"))
    for t in shown:
        if t.speaker == agent.id:
            messages.append(Message(role="assistant", content=t.text or "…"))
        else:
            messages.append(Message(role="user", content=f"{t.name}: {t.text or '…'}"))
    if len(messages) == 1:
        messages.append(Message(role="user", content=OPENER))
    elif messages[1].role == "assistant":
        # The agent spoke first: strict chat templates want a user message before any
        # assistant one, so the view begins where the agent's own view began.
        messages.insert(1, Message(role="user", content=OPENER))
    if messages[-1].role == "assistant":
        messages.append(Message(role="user", content="(Go on.)"))
    return _alternate(messages)


def _alternate(messages: list[Message]) -> list[Message]:
    """Merge consecutive messages of one role: several others may speak between two of the
    agent's turns, and many chat templates insist on user/assistant alternation."""
    out: list[Message] = []
    for m in messages:
        if out and out[-1].role == m.role and m.role != "system":
            out[-1] = Message(role=m.role, content=f"{out[-1].content}\n\n{m.content}")
        else:
            out.append(m)
    return out


def clean_reply(text: str, name: str) -> tuple[str, bool]:
    """The reply without the end signal or a leading "Name:" the model copied from the
    view's format; and whether the end signal was there.

    >>> clean_reply("Ana: Bye now! [END]", "Ana")
    ('Bye now!', True)
    """
    ended = END_SIGNAL.lower() in text.lower()
    text = re.sub(re.escape(END_SIGNAL), "", text, flags=re.IGNORECASE).strip()
    text = re.sub(rf"^\s*\**{re.escape(name)}\**\s*:\s*", "", text, flags=re.IGNORECASE)
    return text.strip(), ended
