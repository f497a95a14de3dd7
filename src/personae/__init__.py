"""personae: the lifecycle of LLM personas. Specify, run, measure, steer; offline by default.

>>> from personae import Persona, render_system_prompt
>>> render_system_prompt(Persona(summary="a retired pilot"), "personagym")[:30]
'Adopt the identity of a retire'
"""

__version__ = "0.1.0"

from personae.chat import ChatSession
from personae.errors import CapabilityError, InputError, PersonaeError, RunError
from personae.models import (
    Capability,
    ChatParams,
    ChoiceScores,
    Completion,
    Message,
    Model,
    ModelSpec,
    ScriptedModel,
    load_model,
    parse_model_spec,
)
from personae.persona import (
    BigFive,
    Demographics,
    Persona,
    Population,
    load_bundled,
    load_personas,
    load_population,
    load_template,
    render_system_prompt,
    resolve_personas,
    save_card,
    save_personas,
    to_card_v2,
)
from personae.runtime import ChatRequest, ChatResult, ResponseCache, RetryPolicy, Runner
from personae.runtime.store import RunStore

# Evals and statistics pull in scipy and pysbd: load them on first use, so `import personae`
# (and `personae chat`) stays fast.
_LAZY = {"EvalConfig": "personae.evals", "run_eval": "personae.evals",
         "persona_eval": "personae.evals", "PersonaEvalResult": "personae.evals",
         "check_gate": "personae.evals", "GateResult": "personae.evals",
         "atomic_fidelity": "personae.evals", "MetricValue": "personae.stats",
         "mean_ci": "personae.stats", "paired_delta_ci": "personae.stats",
         "slope_ci": "personae.stats", "SimConfig": "personae.sim",
         "run_simulation": "personae.sim"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'personae' has no attribute {name!r}")


__all__ = [
    "BigFive",
    "Capability",
    "CapabilityError",
    "ChatParams",
    "ChatRequest",
    "ChatResult",
    "ChatSession",
    "ChoiceScores",
    "Completion",
    "Demographics",
    "EvalConfig",
    "GateResult",
    "InputError",
    "Message",
    "MetricValue",
    "Model",
    "ModelSpec",
    "Persona",
    "PersonaEvalResult",
    "PersonaeError",
    "Population",
    "ResponseCache",
    "RetryPolicy",
    "RunError",
    "RunStore",
    "Runner",
    "ScriptedModel",
    "SimConfig",
    "__version__",
    "atomic_fidelity",
    "check_gate",
    "load_bundled",
    "load_model",
    "load_personas",
    "load_population",
    "load_template",
    "mean_ci",
    "paired_delta_ci",
    "parse_model_spec",
    "persona_eval",
    "render_system_prompt",
    "resolve_personas",
    "run_eval",
    "run_simulation",
    "save_card",
    "save_personas",
    "slope_ci",
    "to_card_v2",
]
