"""What a model backend can do, beyond chat."""

from __future__ import annotations

from enum import StrEnum


class Capability(StrEnum):
    CHAT = "chat"
    LOGPROBS = "logprobs"  # top log-probabilities of generated tokens
    SCORE_CHOICES = "score_choices"  # probabilities over a closed set of continuations
    HIDDEN_STATES = "hidden_states"
    STEERING = "steering"
    BATCH = "batch"  # several requests in one forward pass
