"""The bundled persona sets: ``sample`` (20 hand-written personas) and ``personagym``
(the 200 PersonaGym benchmark personas, MIT licence, see ``data/LICENSE-PersonaGym``)."""

from __future__ import annotations

from importlib import resources

from personae.errors import InputError
from personae.persona.io import load_personas
from personae.persona.schema import Persona, Source

BUNDLED_SETS = {"sample": "sample.yaml", "personagym": "personagym_benchmark.json"}


def load_bundled(name: str = "sample") -> list[Persona]:
    """A bundled persona set by name.

    >>> len(load_bundled("personagym"))
    200
    """
    if name not in BUNDLED_SETS:
        raise InputError(f"unknown bundled persona set {name!r}; expected one of: "
                         + ", ".join(BUNDLED_SETS))
    with resources.as_file(resources.files("personae.persona") / "data" / BUNDLED_SETS[name]) as p:
        personas = load_personas(p)
    upstream = "vsamuel2003/PersonaGym (MIT)" if name == "personagym" else None
    out = []
    for i, persona in enumerate(personas, start=1):
        source = persona.source.model_dump() if persona.source else {}
        source["path"] = f"bundled:{name}"
        if upstream:
            source |= {"upstream": upstream, "license": "MIT"}
        # PersonaGym one-liners have no names: give them short stable ids by position.
        pid = f"personagym-{i:03d}" if name == "personagym" else persona.id
        out.append(persona.model_copy(update={"id": pid, "source": Source(**source)}))
    return out


def resolve_personas(ref: str, *, format: str = "auto") -> list[Persona]:
    """Personas from a reference: a file path, ``sample``, ``personagym``, or ``SET:ID``.

    >>> resolve_personas("sample:rosa-cusco-weaver")[0].name
    'Rosa Quispe Mamani'
    """
    set_name, _, persona_id = ref.partition(":")
    if set_name in BUNDLED_SETS:
        personas = load_bundled(set_name)
        if not persona_id:
            return personas
        for p in personas:
            if p.id == persona_id:
                return [p]
        raise InputError(f"no persona {persona_id!r} in bundled set {set_name!r}; "
                         + id_list(personas, set_name))
    return load_personas(ref, format=format)


def id_list(personas: list[Persona], ref: str, shown: int = 12) -> str:
    """The ids a user can choose from, for an error message: all of them when there are
    few, else the first ``shown`` and where to see the rest.

    >>> id_list(load_bundled("sample")[:2], "sample")
    'ids: chinedu-enugu-mechanic, priya-bengaluru-analyst'
    """
    ids = ", ".join(p.id for p in personas[:shown])
    if len(personas) <= shown:
        return f"ids: {ids}"
    return f"ids: {ids}, ... ({len(personas)} in all: personae personas list {ref})"
