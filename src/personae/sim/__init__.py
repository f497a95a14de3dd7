"""Multi-turn conversations between persona agents and simulated users, and persona drift.

>>> from personae.sim import SimConfig
>>> SimConfig(turns=8).policy
'round-robin'
"""

from personae.sim.agents import Agent, Turn, egocentric_view
from personae.sim.config import SimConfig, build_sim_config
from personae.sim.engine import ConversationPlan, Engine
from personae.sim.run import SimKind, SimPlan, SimResult, run_simulation

__all__ = ["Agent", "ConversationPlan", "Engine", "SimConfig", "SimKind", "SimPlan", "SimResult",
           "Turn",
           "build_sim_config", "egocentric_view", "run_simulation"]
