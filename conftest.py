"""Collection rules for the whole suite (tests/ and the doctests under src/).

On a base install (no `local` extra) whatever needs it is skipped, with the reason shown: tests
marked ``model``, ``server`` or ``local``, and the doctests that build a local model or write a
GGUF file. In the full suite (scripts/test sets PERSONAE_FULL_SUITE=1) nothing is skipped.
"""

from __future__ import annotations

import pytest

from tests.conftest import LOCAL_HINT, missing_local

NEEDS_LOCAL = ("model", "server", "local")
# Doctests (by name prefix) that load a local model or need the gguf package.
DOCTESTS_NEEDING_LOCAL = ("personae.models.hf.", "personae.models.llamacpp.",
                          "personae.models.spec.load_model", "personae.vectors.gguf.")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = missing_local()
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"{', '.join(missing)} not installed; {LOCAL_HINT}")
    for item in items:
        doctest = type(item).__name__ == "DoctestItem"
        if any(item.get_closest_marker(m) for m in NEEDS_LOCAL) or (
                doctest and item.name.startswith(DOCTESTS_NEEDING_LOCAL)):
            item.add_marker(skip)
