"""The pytest plugin as a user meets it: a project of their own, personae installed, a test
that asks for the ``persona_eval`` fixture, models behind OpenAI-compatible servers."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.server

BOT = """\
name: Ingrid Solberg
summary: A taciturn retired lighthouse keeper on a small island off the coast of Norway.
facts:
  - I kept the Svartholm light for thirty-one years.
  - I mend my own nets.
"""

QUESTIONS = """\
{"Expected Action": ["A storm is coming in. What do you do first?",
                     "A tourist asks to climb the lighthouse. What do you say?",
                     "Your radio stops working. What now?"],
 "Linguistic Habits": ["Describe your morning.", "What do you think of the mainland?",
                       "Tell me about the sea."]}
"""

USER_TEST = """\
import os

# Fixed questions: a gate compares runs probe by probe, so they must ask the same things.
SETTINGS = dict(questions="questions.json", tasks=["Expected Action", "Linguistic Habits"],
                per_task=3, suites=["fidelity"], reliability_sample=0)


def test_bot_stays_in_character(persona_eval):
    result = persona_eval(personas="bot.yaml", model=os.environ["BOT_MODEL"],
                          judge=os.environ["BOT_JUDGE"], **SETTINGS)
    print("model calls:", result.model_calls)
    assert result.fidelity >= float(os.environ.get("BOT_FLOOR", "3.5"))
    if os.path.isdir("baseline"):
        result.assert_no_regression(baseline="baseline", max_drop={"fidelity": 0.3})
"""


def test_a_users_suite_passes_a_good_bot_and_fails_a_degraded_one(
        pytester: pytest.Pytester, bots: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makefile(".yaml", bot=BOT)
    pytester.makefile(".json", questions=QUESTIONS)
    pytester.makepyfile(test_bot=USER_TEST)
    monkeypatch.setenv("BOT_JUDGE", bots["judge"])

    # The fixture comes from the pytest11 entry point alone: no conftest, no -p option.
    monkeypatch.setenv("BOT_MODEL", bots["good"])
    first = pytester.runpytest_subprocess("-s")
    first.assert_outcomes(passed=1)
    runs = list((pytester.path / "personae-runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "summary.json").exists()
    first.stdout.fnmatch_lines(["*model calls: [1-9]*"])

    # Unchanged: the finished run is resumed, no model is called.
    shutil.copytree(runs[0], pytester.path / "baseline")
    again = pytester.runpytest_subprocess("-s")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*model calls: 0"])

    # A degraded bot fails the floor with the estimate and its interval in the message.
    monkeypatch.setenv("BOT_MODEL", bots["bad"])
    worse = pytester.runpytest_subprocess()
    worse.assert_outcomes(failed=1)
    worse.stdout.fnmatch_lines(["*assert fidelity 2.* [[]*, *[]] n=6 >= 3.5*"])

    # Below the baseline by more than the allowed drop, beyond noise.
    monkeypatch.setenv("BOT_FLOOR", "1")
    regressed = pytester.runpytest_subprocess()
    regressed.assert_outcomes(failed=1)
    regressed.stdout.fnmatch_lines([
        "*AssertionError: persona quality gate failed:*",
        "*fidelity dropped * vs baseline (max 0.3; 6 probes)*"])
