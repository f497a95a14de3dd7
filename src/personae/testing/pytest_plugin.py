"""personae's pytest plugin, registered through the ``pytest11`` entry point: installing
personae is enough to have the ``persona_eval`` fixture in any test suite.

    def test_bot_stays_in_character(persona_eval):
        result = persona_eval(personas="bot.yaml", model="openai:bot@http://127.0.0.1:8000/v1",
                              judge="openai:judge@http://127.0.0.1:8001/v1")
        assert result.fidelity >= 3.5
        result.assert_no_regression(baseline="runs/main", max_drop={"fidelity": 0.3})

Runs go under ``--personae-runs DIR`` (or the ``personae_runs`` ini option; default
``personae-runs`` in the rootdir), named by their settings: a re-run of an unchanged test
resumes its finished run and makes no model call. Point CI's cache at that directory.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from personae.evals.assertions import PersonaEvalResult


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = "directory of persona_eval's run stores (default: personae-runs in the rootdir)"
    parser.getgroup("personae").addoption("--personae-runs", dest="personae_runs",
                                          default=None, help=help_text)
    parser.addini("personae_runs", help_text, default=None)


@pytest.fixture
def persona_eval(request: pytest.FixtureRequest) -> Callable[..., PersonaEvalResult]:
    """``persona_eval(personas=..., model=..., judge=..., **eval_settings)``: run (or resume)
    a persona eval and return a result to assert on (``.fidelity``, ``.consistency``,
    ``.assert_no_regression(baseline=...)``)."""
    # Imported here, not at the top: every pytest session of every project with personae
    # installed loads this plugin, and most never ask for the fixture.
    from personae.evals.assertions import persona_eval as run_persona_eval

    config = request.config
    where = config.getoption("personae_runs") or config.getini("personae_runs")
    runs_dir = Path(where) if where else config.rootpath / "personae-runs"
    if not runs_dir.is_absolute():
        runs_dir = config.rootpath / runs_dir
    return partial(run_persona_eval, runs_dir=runs_dir)
