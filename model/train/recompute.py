"""Gradient checkpointing that recomputes RSA layers with the reference features they first saw.

Gradient checkpointing re-runs each transformer block during the backward pass. The Base UNet's RSA
processors read the reference features from the shared `ReferenceContext`, which `BootPIGUNets`
clears as soon as the forward pass returns; a plain recomputation would then run ordinary
self-attention and produce wrong gradients (or torch's "recomputed tensors differ" error). Here each
checkpointed call snapshots the context and restores that snapshot for its recomputation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import fields, replace

from torch.utils.checkpoint import checkpoint

from model.attention import ReferenceContext
from model.unets import BootPIGUNets


@contextmanager
def _restored(context: ReferenceContext, snapshot: ReferenceContext) -> Iterator[None]:
    saved = replace(context)
    for f in fields(ReferenceContext):
        setattr(context, f.name, getattr(snapshot, f.name))
    try:
        yield
    finally:
        for f in fields(ReferenceContext):
            setattr(context, f.name, getattr(saved, f.name))


def context_aware_checkpointing(context: ReferenceContext):
    """A `gradient_checkpointing_func` for diffusers models whose processors share `context`."""

    def checkpointed(module, *args):
        # Recomputation must not record again (the recorder's features are already in the graph).
        snapshot = replace(context, recording=False)
        return checkpoint(
            module.__call__,
            *args,
            use_reentrant=False,
            context_fn=lambda: (nullcontext(), _restored(context, snapshot)),
        )

    return checkpointed


def enable_gradient_checkpointing(unets: BootPIGUNets) -> None:
    """Checkpoint both UNets' blocks so activations are recomputed in the backward pass."""
    func = context_aware_checkpointing(unets.context)
    for unet in (unets.ref_unet, unets.base_unet):
        unet.enable_gradient_checkpointing(gradient_checkpointing_func=func)
