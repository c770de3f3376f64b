"""Compile the UNets' stateless blocks with `torch.compile` (opt-in, for CUDA).

Replayed as a CUDA graph, the exact k = 4 step at 512 px on an H100 is bound by its kernels, and the
profile puts half of them around the convolutions: the convolutions themselves, cuDNN's NCHW <-> NHWC
conversions and the group norms with their SiLUs, which a compiler fuses. The attention processors keep
per-call Python state (recorded reference features, injected references, pooling), so the UNets are
not compiled whole: only the blocks without such state are, the ResNet blocks, feed-forwards and
resamplers. Instances with the same shapes share one compiled graph.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D

STATELESS_BLOCKS = (ResnetBlock2D, FeedForward, Downsample2D, Upsample2D)
# One compiled graph per block shape and batch size: SD 2.1 has a few dozen of them.
COMPILE_CACHE_LIMIT = 256


def compile_stateless_blocks(*unets: torch.nn.Module, mode: str | None = None) -> int:
    """Compile every stateless block of `unets` in place (compiled on first call); returns how many."""
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, COMPILE_CACHE_LIMIT)
    count = 0
    for unet in unets:
        for module in unet.modules():
            if isinstance(module, STATELESS_BLOCKS):
                module.compile(mode=mode, dynamic=False)
                count += 1
    return count
