"""Putting a questionnaire to a model: prompts, answer modes, robustness variants.

Each item becomes a chat: an optional system prompt (a rendered persona, a trait-shaping
prompt, or both), then the questionnaire's prompt template filled with the item as the user
turn. Two modes read the answer:

``logprob``
    `score_choices` over the response values ("1".."5") with the assistant turn prefilled
    with ``"My answer: "`` (without it the bundled model puts little mass on the digits).
    The answer is the expected value under the renormalised probabilities; the argmax and
    the coverage (mass on the options before renormalising) are kept beside it.
``generate``
    a short greedy reply (8 tokens, temperature 0), parsed strictly: the first number in the
    reply if it is one of the response values, else the one response label the reply names.
    A number off the scale, two different labels, or nothing at all is unparsable (``None``).

Variants check that the answers do not hinge on how the items are put:

- ``base``: the first prompt template, options listed low to high, items independent.
- ``reversed``: the same wording with the options listed the other way round
  (1 = "Very Accurate" ... 5 = "Very Inaccurate"); answers are mapped back to scale values.
- ``paraphrase:ID``: another prompt template of the questionnaire (the bundled banks have
  three besides the base one).
- ``ordered`` / ``shuffled``: items put in blocks, each block one running conversation in
  which earlier items and the model's own answers stay in the history. Independently
  administered items cannot see each other, so their order could not matter; in a
  conversation it can. ``ordered`` keeps the questionnaire's order and ``shuffled`` a
  seeded permutation of it, so the two differ only in the order (and so the context) of the
  items. In ``logprob`` mode the model's answer in the history is its argmax
  (``"My answer: 4"``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from personae.errors import InputError, RunError
from personae.instruments.questionnaire import Questionnaire, format_value
from personae.instruments.scoring import ScaleScores, score_answers
from personae.judge.closed import ClosedJudge, ClosedQuestion
from personae.models import ChatParams, Message, Model
from personae.runtime import ProgressReporter, Runner
from personae.runtime.pool import run_pool

Mode = Literal["logprob", "generate"]
Order = Literal["independent", "ordered", "shuffled"]
MODES: tuple[str, ...] = ("logprob", "generate")
PREFILL = "My answer: "
GENERATE_PARAMS = ChatParams(max_tokens=8, temperature=0.0, seed=0)
BLOCK_SIZE = 10
# Names the CLI accepts; "paraphrase" and "shuffled" stand for several variants each.
VARIANT_GROUPS: tuple[str, ...] = ("base", "reversed", "paraphrase", "shuffled")


@dataclass(frozen=True)
class Variant:
    """How the items are put: which template, option order, and item order.

    >>> from personae.instruments import load_questionnaire
    >>> v = resolve_variant(load_questionnaire("ipip-120"), "reversed")
    >>> v.prompt_id, v.reverse_options, v.order
    ('psyborgs-plk-ipip-0', True, 'independent')
    """

    id: str
    prompt_id: str
    reverse_options: bool = False
    order: Order = "independent"


def resolve_variant(questionnaire: Questionnaire, name: str) -> Variant:
    """One variant by name: ``base``, ``reversed``, ``paraphrase:ID``, ``ordered``, ``shuffled``."""
    base_prompt = questionnaire.templates()[0].id
    if name in ("base", "ordered", "shuffled", "reversed"):
        order: Order = "independent"
        if name == "ordered" or name == "shuffled":
            order = name
        v = Variant(name, base_prompt, reverse_options=name == "reversed", order=order)
        questionnaire.render(questionnaire.items[0].id, v.prompt_id,
                             reverse_options=v.reverse_options)  # raises if it cannot be put
        return v
    kind, _, prompt_id = name.partition(":")
    if kind == "paraphrase" and prompt_id:
        questionnaire.template(prompt_id)  # raises for an unknown template
        if prompt_id == base_prompt:
            raise InputError(f"variant {name!r}: {prompt_id!r} is the base template")
        return Variant(name, prompt_id)
    raise InputError(f"unknown variant {name!r}; use base, reversed, paraphrase[:ID], "
                     "ordered, shuffled or all")


def expand_variants(questionnaire: Questionnaire, names: Iterable[str]) -> list[Variant]:
    """Variants for a list of names, with the groups expanded: ``paraphrase`` is every
    template but the first, ``shuffled`` is ``ordered`` plus ``shuffled`` (its baseline),
    ``all`` is everything.

    >>> from personae.instruments import load_questionnaire
    >>> ids = [v.id for v in expand_variants(load_questionnaire("ipip-120"), ["all"])]
    >>> ids[:3], ids[-2:]
    (['base', 'reversed', 'paraphrase:plain'], ['ordered', 'shuffled'])
    >>> len(ids)  # three paraphrases
    7
    """
    wanted: list[str] = []
    for name in names:
        if name == "all":
            wanted += expand_names(questionnaire, VARIANT_GROUPS)
        else:
            wanted += expand_names(questionnaire, [name])
    if not wanted:
        raise InputError("no variants to run")
    return [resolve_variant(questionnaire, n) for n in dict.fromkeys(wanted)]


def expand_names(questionnaire: Questionnaire, names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name == "paraphrase":
            others = [t.id for t in questionnaire.templates()[1:]]
            if not others:
                raise InputError(f"questionnaire {questionnaire.name} has one prompt template; "
                                 "the paraphrase variant needs two or more")
            out += [f"paraphrase:{t}" for t in others]
        elif name == "shuffled":
            out += ["ordered", "shuffled"]
        else:
            out.append(name)
    return out


class ItemAnswer(BaseModel):
    """One item's answer. ``value`` is the raw response on the scale (before reverse keys;
    already mapped back for a reversed listing): the expected value in ``logprob`` mode, the
    parsed value in ``generate`` mode, None when unparsable. ``probs`` are over the options
    as shown (the digits "1".."5" in order); ``reply`` is the assistant turn a conversation
    carries forward."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    variant: str
    mode: Mode
    position: int
    block: int | None = None
    value: float | None
    argmax: float | None = None
    coverage: float | None = None
    probs: list[float] | None = None
    raw: str | None = None
    reply: str
    prefill: str = ""

    @property
    def unparsable(self) -> bool:
        return self.value is None


# ----------------------------------------------------------------------------- prompts


def administration_order(questionnaire: Questionnaire, v: Variant,
                         items: Sequence[str] | None = None, *, seed: int = 0) -> list[str]:
    """Item ids in the order they are put: the questionnaire's, or seeded-shuffled.

    >>> from personae.instruments import load_questionnaire
    >>> q = load_questionnaire("ipip-120")
    >>> administration_order(q, resolve_variant(q, "shuffled"), ["1", "2", "3", "4"], seed=1)
    ['4', '1', '3', '2']
    """
    if items is None:
        ids = [i.id for i in questionnaire.items]
    else:
        known = {i.id for i in questionnaire.items}
        ids = [str(i) for i in items]
        for i in ids:
            if i not in known:
                raise InputError(f"questionnaire {questionnaire.name}: unknown item {i!r}")
        ids = list(dict.fromkeys(ids))
    if v.order == "shuffled":
        random.Random(seed).shuffle(ids)
    return ids


def blocks(ids: Sequence[str], v: Variant, block_size: int = BLOCK_SIZE) -> list[list[str]]:
    """Units of administration: one item each, or conversation blocks of ``block_size``."""
    if v.order == "independent":
        return [[i] for i in ids]
    if block_size < 1:
        raise InputError(f"block size must be at least 1, got {block_size}")
    return [list(ids[k:k + block_size]) for k in range(0, len(ids), block_size)]


def item_messages(questionnaire: Questionnaire, item_id: str, v: Variant, *,
                  system: str | None = None,
                  history: Sequence[tuple[str, str]] = ()) -> list[Message]:
    """The chat for one item: system prompt, earlier (prompt, reply) turns, this item.

    >>> from personae.instruments import load_questionnaire
    >>> q = load_questionnaire("ipip-120")
    >>> v = resolve_variant(q, "ordered")
    >>> history = [(q.render("1"), "My answer: 4")]
    >>> [m.role for m in item_messages(q, "2", v, system="You are Ana.", history=history)]
    ['system', 'user', 'assistant', 'user']
    """
    out = [Message(role="system", content=system)] if system else []
    for prompt, reply in history:
        out += [Message(role="user", content=prompt), Message(role="assistant", content=reply)]
    prompt = questionnaire.render(item_id, v.prompt_id, reverse_options=v.reverse_options)
    return [*out, Message(role="user", content=prompt)]


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")


def parse_answer(text: str, questionnaire: Questionnaire, *,
                 reverse: bool = False) -> float | None:
    """The scale value a generated reply names, or None when it is unparsable.

    The first number counts when there is one (mapped back if the options were listed
    reversed); a number off the scale is unparsable. Without a number, the reply must name
    exactly one response label (a label inside a longer one, "Accurate" in "Moderately
    Accurate", does not count separately); labels mean the same whatever the listing order.

    >>> from personae.instruments import load_questionnaire
    >>> q = load_questionnaire("ipip-120")
    >>> parse_answer(" 4. I often do.", q), parse_answer("4", q, reverse=True)
    (4.0, 2.0)
    >>> parse_answer("7", q), parse_answer("I'd say moderately accurate", q)
    (None, 4.0)
    >>> parse_answer("Very Accurate or Very Inaccurate", q) is None
    True
    """
    number = _NUMBER.search(text)
    if number is not None:
        value = float(number.group())
        values = [float(o.value) for o in questionnaire.options]
        if value not in values:
            return None
        return float(questionnaire.true_value(questionnaire.options[values.index(value)].value,
                                              reverse=reverse))
    spans: list[tuple[int, int, float]] = []
    for o in questionnaire.options:
        for m in re.finditer(rf"(?<!\w){re.escape(o.label)}(?!\w)", text, re.IGNORECASE):
            spans.append((m.start(), m.end(), float(o.value)))
    named = {v for s, e, v in spans
             if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)}
    return named.pop() if len(named) == 1 else None


# ----------------------------------------------------------------------------- administering


async def _answer(judge: ClosedJudge, questionnaire: Questionnaire, item_id: str,
                  v: Variant, mode: Mode, messages: list[Message], position: int,
                  block: int | None, prefill: str) -> ItemAnswer:
    """One item's answer from the model behind ``judge`` (a `ClosedJudge` with no words
    fallback: ``generate`` mode asks in words itself, ``logprob`` mode never does)."""
    common = {"item_id": item_id, "variant": v.id, "mode": mode, "position": position,
              "block": block}
    if mode == "generate":
        completion = await judge.runner.chat(messages, GENERATE_PARAMS)
        value = parse_answer(completion.text, questionnaire, reverse=v.reverse_options)
        return ItemAnswer(**common, value=value, argmax=value, raw=completion.text,
                          reply=completion.text.strip())
    shown = [format_value(o.value) for o in questionnaire.options]
    answer = await judge.read(ClosedQuestion(messages, shown, prefill))
    if answer.scores is None:  # no mass on any option: unparsable
        return ItemAnswer(**common, value=None, reply=answer.prefill.strip(),
                          prefill=answer.prefill)
    scores = answer.scores
    true = [float(questionnaire.true_value(o.value, reverse=v.reverse_options))
            for o in questionnaire.options]
    top = max(range(len(true)), key=scores.probs.__getitem__)
    return ItemAnswer(**common, value=sum(p * t for p, t in zip(scores.probs, true, strict=True)),
                      argmax=true[top], coverage=scores.coverage, probs=scores.probs,
                      reply=f"{answer.prefill}{shown[top]}", prefill=answer.prefill)


async def administer(
    model: Model,
    questionnaire: Questionnaire,
    *,
    mode: Mode = "logprob",
    system: str | None = None,
    variant: str | Variant = "base",
    items: Sequence[str] | None = None,
    seed: int = 0,
    runner: Runner | None = None,
    block_size: int = BLOCK_SIZE,
    prefill: str = PREFILL,
    done: Mapping[str, ItemAnswer] | None = None,
    on_answer: Callable[[ItemAnswer], None] | None = None,
    failures: list[str] | None = None,
    progress: ProgressReporter | None = None,
) -> list[ItemAnswer]:
    """Put ``questionnaire`` (or the ``items`` among it) to ``model``; answers in the order
    the items were put.

    ``system`` is the system prompt (a rendered persona, a shaping prompt). ``runner`` adds
    a cache, retries and a concurrency limit (default: a plain runner at the model's own
    concurrency). For resumable runs: ``done`` holds answers already stored (they are not
    asked again, and a conversation block continues from them), ``on_answer`` is called
    with each new answer the moment it arrives, and with a ``failures`` list a failed call
    is recorded there instead of raised (a conversation block stops at its first failure).

    >>> import asyncio
    >>> from personae.instruments import load_questionnaire
    >>> from personae.models.scripted import ScriptedModel
    >>> q = load_questionnaire("ipip-120")
    >>> agreeable = ScriptedModel(choices={"1": 0.0, "2": 0.1, "3": 0.1, "4": 0.6, "5": 0.2})
    >>> answers = asyncio.run(administer(agreeable, q, items=["1", "9"]))
    >>> [(a.item_id, round(a.value, 2), a.argmax) for a in answers]
    [('1', 3.9, 4.0), ('9', 3.9, 4.0)]
    >>> round(score_administration(q, answers).means()["A"], 2)  # item 9 is reverse-keyed
    2.1
    """
    v = variant if isinstance(variant, Variant) else resolve_variant(questionnaire, variant)
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; use logprob or generate")
    runner = runner or Runner(model, progress="off")
    done = dict(done or {})
    order = administration_order(questionnaire, v, items, seed=seed)
    units = blocks(order, v, block_size)
    position = {item_id: k for k, item_id in enumerate(order)}
    # Every item's distribution counts (no coverage threshold: a low one is reported, not
    # hidden), and a model that cannot score choices is an error, not a reason to ask in words.
    judge = ClosedJudge(runner, min_coverage=0.0, words=None)
    answers: dict[str, ItemAnswer] = {i: a for i, a in done.items() if i in position}

    async def run_unit(index: int, unit: list[str]) -> None:
        history: list[tuple[str, str]] = []
        block = None if v.order == "independent" else index
        for item_id in unit:
            messages = item_messages(questionnaire, item_id, v, system=system, history=history)
            answer = answers.get(item_id)
            if answer is None:
                try:
                    answer = await _answer(judge, questionnaire, item_id, v, mode, messages,
                                           position[item_id], block, prefill)
                except RunError as exc:
                    if failures is None or isinstance(exc, InputError):
                        raise
                    failures.append(f"item {item_id} ({v.id}): {exc}")
                    if progress is not None:
                        progress.advance(failed=True)
                    return
                answers[item_id] = answer
                if on_answer is not None:
                    on_answer(answer)
                if progress is not None:
                    progress.advance()
            history.append((messages[-1].content, answer.reply))

    # run_unit records the failures it may; what it raises ends the whole administration.
    await run_pool(enumerate(units), lambda unit: run_unit(*unit),
                   limit=min(runner.concurrency, len(units)) or 1, catch=())
    return sorted(answers.values(), key=lambda a: a.position)


def answers_by_item(answers: Iterable[ItemAnswer], *,
                    use: Literal["expected", "argmax"] = "expected") -> dict[str, float | None]:
    """``{item_id: value}`` for scoring: the expected value, or the argmax answer."""
    return {a.item_id: (a.value if use == "expected" else a.argmax) for a in answers}


def score_administration(questionnaire: Questionnaire, answers: Iterable[ItemAnswer], *,
                         use: Literal["expected", "argmax"] = "expected") -> ScaleScores:
    """Domain and facet scores of one administration (reverse keys applied; unparsable and
    unasked items excluded and counted as refused). See `administer` for an example."""
    return score_answers(questionnaire, answers_by_item(answers, use=use))
