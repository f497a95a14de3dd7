"""Evaluations: PersonaGym-compatible fidelity, consistency (NLI), atomic fidelity, judge
reliability and baselines, run through the resumable run store.

>>> from personae.evals import atomic_fidelity
>>> atomic_fidelity([[[5, 4], [4, 4]]], "high")["acc_atom"]
1.0
"""

from personae.evals.assertions import PersonaEvalResult, persona_eval
from personae.evals.atomic import atomic_fidelity, split_atoms
from personae.evals.config import CONDITIONS, PRESETS, SUITES, EvalConfig, build_config
from personae.evals.gate import GateResult, check_gate
from personae.evals.personagym import TASKS, parse_score, persona_score
from personae.evals.run import EvalKind, EvalResult, open_run, run_eval
from personae.evals.training import Thresholds, read_run, training_rows

__all__ = [
    "CONDITIONS",
    "PRESETS",
    "SUITES",
    "TASKS",
    "EvalConfig",
    "EvalKind",
    "EvalResult",
    "GateResult",
    "PersonaEvalResult",
    "Thresholds",
    "atomic_fidelity",
    "build_config",
    "check_gate",
    "open_run",
    "parse_score",
    "persona_eval",
    "persona_score",
    "read_run",
    "run_eval",
    "split_atoms",
    "training_rows",
]
