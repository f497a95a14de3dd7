"""The white-box API of in-process transformers models (the ``hf`` backend): token ids of a
prompt and its response, the outputs of decoder blocks for given ids, and the projection of
responses on a persona vector. Every forward pass runs on the model's own compute thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from personae.errors import CapabilityError, InputError
from personae.models.base import Capability, Message, Model, require_capability
from personae.models.hooks import apply_steering, decoder_layers
from personae.models.spec import load_model
from personae.vectors.file import PersonaVector
from personae.vectors.projection import Projection

# Per batch of forward passes: sequences × padded length, to bound activation memory.
TOKEN_BUDGET = 16384


def require_white_box(model: Model | str) -> Any:
    """The model (loaded first if given as a spec) if it exposes transformers internals
    (the ``hf`` backend), else a clear error naming the capability."""
    if isinstance(model, str):
        model = load_model(model)
    require_capability(model, Capability.HIDDEN_STATES)
    if not all(hasattr(model, a) for a in ("model", "tokenizer", "render_prompt")):
        raise CapabilityError(f"model {model.identity!r} exposes no transformers model; use an "
                              "hf: model spec (e.g. hf:bundled)")
    return model


def encode(tokenizer: Any, text: str, split: int) -> tuple[list[int], int]:
    """Token ids of ``text`` and how many of them start before character ``split`` (the
    prompt/response boundary). One tokenisation of the whole text, as the model saw it.

    A token straddling the boundary counts as prompt.
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [s for s, _ in enc["offset_mapping"]]
    return list(enc["input_ids"]), int(np.searchsorted(starts, split, side="left"))


class _Stop(Exception):
    """Raised by the hook on the deepest layer needed: later layers need not run."""


def read_block_outputs(model: Any, sequences: Sequence[Sequence[int]],
                       layers: Sequence[int] | None = None,
                       ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, acts)`` for each token sequence, ``acts`` of shape
    ``(len(layers), n_tokens, hidden)`` (all layers by default): the output of each decoder
    block, float32. Sequences are batched (right padding) by length, so the order of the
    yielded indices is not the input order.
    """
    net = model.model  # loads the model (and torch) on first use
    import torch

    blocks = decoder_layers(net)
    wanted = list(range(len(blocks))) if layers is None else [int(x) for x in layers]
    for layer in wanted:
        if not 0 <= layer < len(blocks):
            raise InputError(f"layer {layer} is out of range: the model has layers "
                             f"0..{len(blocks) - 1}")
    pad = model.tokenizer.pad_token_id or 0
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for batch in _batches(order, sequences, max(1, getattr(model, "batch_size", 8))):
        ids = torch.full((len(batch), max(len(sequences[i]) for i in batch)), pad,
                         dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(batch):
            ids[row, : len(sequences[i])] = torch.tensor(list(sequences[i]))
            mask[row, : len(sequences[i])] = 1
        acts = on_model_thread(model, lambda: _forward(net, blocks, ids, mask, wanted,
                                                        getattr(model, "steerings", ())))
        for row, i in enumerate(batch):
            yield i, acts[row, :, : len(sequences[i])]


def _forward(net: Any, blocks: Sequence[Any], ids: Any, mask: Any, wanted: list[int],
             steerings: Sequence[Any] = ()) -> np.ndarray:
    """One batch through the decoder; the outputs of blocks ``wanted``, ``(batch, layers,
    tokens, hidden)``, with the model's own steering applied (what a steered model
    computes). Hooks live only for this call, so other users of the model never see them."""
    import torch

    captured: dict[int, Any] = {}
    deepest = max(wanted)

    def hook(layer: int) -> Callable[..., None]:
        def grab(_mod: Any, _inp: Any, out: Any) -> None:
            captured[layer] = out[0] if isinstance(out, tuple) else out
            if layer == deepest and deepest < len(blocks) - 1:
                raise _Stop
        return grab

    steered: Any = contextlib.nullcontext()
    if steerings:
        steered = apply_steering(net, steerings)  # its hooks go first: we read steered outputs
    handles = [blocks[layer].register_forward_hook(hook(layer)) for layer in set(wanted)]
    try:
        # The base model, not the LM head: its logits would be computed for nothing.
        with torch.inference_mode(), steered, contextlib.suppress(_Stop):
            net.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return torch.stack([captured[layer] for layer in wanted], dim=1).float().numpy()


def on_model_thread(model: Any, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on an in-process backend's own compute thread, under its lock (see
    `personae.models.base.InProcessBackend.run_sync`); directly for any other model."""
    run_sync = getattr(model, "run_sync", None)
    return run_sync(fn) if callable(run_sync) else fn()


def _batches(order: list[int], sequences: Sequence[Sequence[int]],
             size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    for i in order:  # ascending length: the last one added sets the padded width
        if batch and (len(batch) >= size or (len(batch) + 1) * len(sequences[i]) > TOKEN_BUDGET):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def score_responses(model: Model | str, vector: PersonaVector, layer: int,
                    items: Sequence[tuple[Sequence[Message], str]]) -> list[Projection]:
    """Projection of each response's tokens at ``layer``, read with the response as the
    assistant's reply to ``messages`` (batched). The response text is tokenised as part of
    the whole prompt + response, as the model saw it.
    """
    hf = require_white_box(model)
    direction = vector.unit(layer)
    encoded = []
    for messages, response in items:
        prompt = hf.render_prompt(list(messages))
        encoded.append(encode(hf.tokenizer, prompt + response, len(prompt)))
    out: list[Projection | None] = [None] * len(items)
    for i, acts in read_block_outputs(hf, [ids for ids, _ in encoded], [layer]):
        out[i] = Projection.of(acts[0], direction, start=encoded[i][1])
    return [p for p in out if p is not None]
