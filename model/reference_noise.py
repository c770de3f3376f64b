"""Every step's noised references, made before the denoising loop so that no step waits for the host.

The exact mode re-noises the references to each step's timestep with fresh noise (the paper's Sec. 3.3).
Done inside the loop, each step draws the noise on the CPU (the job's generator is a CPU generator, so a
seed gives the same image on any device), copies it to the GPU, and the scheduler's `add_noise` looks
the timestep up with `.item()`: host synchronisations that leave the GPU idle between two CUDA-graph
replays. Drawing every step's noise up front, in the same order from the same generator, and noising
all steps in one `add_noise` call gives the same numbers (`add_noise` is elementwise per sample) and
leaves the loop nothing but device work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor


def noised_references(
    scheduler: SchedulerMixin,
    clean: torch.Tensor,
    timesteps: Sequence[torch.Tensor] | torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """(S, k, C, h, w): `clean` (k, C, h, w) noised to each of the S `timesteps`, fresh noise per step.

    The noise is drawn step after step, as a loop calling `randn_tensor` once per step would draw it, so
    the result equals that loop's `scheduler.add_noise(clean, noise_i, t_i)` exactly.
    """
    count = len(timesteps)
    if count == 0:
        return clean.new_empty((0, *clean.shape))
    noise = torch.stack(
        [
            randn_tensor(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
            for _ in range(count)
        ]
    )
    per_sample = torch.stack([torch.as_tensor(t, device=clean.device) for t in timesteps])
    per_sample = per_sample.reshape(count, 1).expand(count, clean.shape[0]).flatten()
    noisy = scheduler.add_noise(clean.repeat(count, 1, 1, 1), noise.flatten(0, 1), per_sample)
    return noisy.view(count, *clean.shape)
