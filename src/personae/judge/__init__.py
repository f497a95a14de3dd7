"""Judging, shared by every run kind: how a persona is shown to a judge, NLI against its
facts (`personae.judge.nli`) and reading a lettered choice (`personae.judge.choices`).

>>> from personae import Persona
>>> describe(Persona(name="Ana", summary="A nurse from Lisbon."))
'Ana: A nurse from Lisbon.'
"""

from personae.persona import Persona


def describe(persona: Persona) -> str:
    """The persona as judges see it: its one-line description, with its name in front."""
    text = persona.describe()
    if persona.name and persona.name not in text:
        return f"{persona.name}: {text}"
    return text
