"""Evaluations: fidelity (PersonaGym-compatible), consistency, atomic fidelity, judge reliability."""
