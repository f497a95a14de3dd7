"""Steering a transformers model: forward hooks that add each `Steering`'s delta to the
output of its decoder block, at every position, prompt and generated tokens alike.
`apply_steering` attaches the hooks for the duration of a ``with`` block and removes them on
the way out, exceptions included. torch is imported only when a model is steered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from personae.errors import InputError, RunError
from personae.vectors.file import PersonaVector
from personae.vectors.steering import Steering, layer_deltas, steerings_for


def decoder_layers(model: Any) -> Sequence[Any]:
    """The list of decoder blocks of a transformers causal LM (``model.model.layers`` for
    llama-style models), found without knowing the architecture's attribute names."""
    import torch

    base = model.get_decoder() if hasattr(model, "get_decoder") else None
    candidates = [getattr(base, "layers", None), getattr(getattr(model, "model", None), "layers",
                                                                 None),
                  getattr(model, "layers", None),
                  getattr(getattr(model, "transformer", None), "h", None),
                  getattr(getattr(model, "gpt_neox", None), "layers", None)]
    for c in candidates:
        if isinstance(c, torch.nn.ModuleList) and len(c) > 0:
            return c
    # Unknown layout: the one ModuleList as long as the config says the model is deep.
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n]
    if n and len(lists) == 1:
        return lists[0]
    raise RunError(f"cannot find the decoder layers of {type(model).__name__} to steer")


def _model_hidden(model: Any) -> int | None:
    config = getattr(model, "config", None)
    getter = getattr(config, "get_text_config", None)
    text = getter() if callable(getter) else config
    return getattr(text, "hidden_size", None)


def _make_hook(delta: Any) -> Any:
    def add_delta(module: Any, args: Any, output: Any) -> Any:
        # transformers 5.x decoder layers return a tensor, 4.x a tuple (hidden, ...).
        if isinstance(output, tuple):
            return (output[0] + delta, *output[1:])
        return output + delta

    return add_delta


@contextmanager
def apply_steering(model: Any, steerings: Sequence[Steering]) -> Iterator[None]:
    """Steer a transformers model inside a ``with`` block (hooks removed on exit).

    The deltas are converted to the model's dtype and device once, here; each hook is one
    broadcast add. Hooks are put first, so hooks that record hidden states (transformers'
    ``output_hidden_states``) see the steered output.
    """
    if not steerings:
        yield
        return
    layers = decoder_layers(model)
    hidden = _model_hidden(model)
    for s in steerings:
        if hidden is not None and s.vector.hidden != hidden:
            raise InputError(f"the {s.vector.meta.trait!r} vector has width {s.vector.hidden}, "
                             f"the model's hidden size is {hidden}")
        if s.layer >= len(layers):
            raise InputError(f"cannot steer layer {s.layer}: the model has layers "
                             f"0..{len(layers) - 1}")
    import torch

    handles = []
    try:
        for layer, delta in layer_deltas(steerings).items():
            block = layers[layer]
            ref = next(block.parameters())
            tensor = torch.from_numpy(delta).to(device=ref.device, dtype=ref.dtype)
            handles.append(block.register_forward_hook(_make_hook(tensor), prepend=True))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def steering(torch_model: Any, vector: PersonaVector, layers: int | Sequence[int],
             coefficient: float, *, relative: bool = False) -> Iterator[list[Steering]]:
    """Add ``coefficient × unit vector`` at ``layers`` of a transformers model while inside.

    This patches the torch module itself: a personae `HFModel` built on it keeps its
    unsteered identity, so its response cache would file steered replies under unsteered
    keys, and other users of the module see the hooks. With an `HFModel`, prefer
    ``hf.with_steering(steerings_for(vector, layer, coef))`` (or ``?steer=`` in the spec).

    Example (needs the model, so not run here)::

        hf = load_model("hf:bundled")
        with steering(hf.model, load_vector("evil.safetensors"), 12, 4.0):
            reply = asyncio.run(hf.chat(messages, ChatParams(temperature=0)))
    """
    steers = steerings_for(vector, layers, coefficient, relative=relative)
    with apply_steering(torch_model, steers):
        yield steers
