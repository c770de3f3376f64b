"""Three-branch guidance of the paper's Eq. 4, computable from explicit tensors.

`guided_noise_prediction` has no randomness inside: given latents, a timestep, prompt embeddings and
either reference features or noised reference latents it returns one step's guided noise, so the
method can be checked against the equations.
"""

from __future__ import annotations

import torch

from model.attention import ReferenceFeatures
from model.config import Pooling
from model.unets import BootPIGUNets


def combine_guidance(
    eps_uncond: torch.Tensor,
    eps_image: torch.Tensor,
    eps_text: torch.Tensor,
    guidance_image: float,
    guidance_text: float,
) -> torch.Tensor:
    """Eq. 4: U(x) + eta_im (U(x, ref) - U(x)) + eta_txt (U(x, ref, c) - U(x, ref))."""
    return eps_uncond + guidance_image * (eps_image - eps_uncond) + guidance_text * (eps_text - eps_image)


def guided_noise_prediction(
    unets: BootPIGUNets,
    latents: torch.Tensor,
    timestep: torch.Tensor | int,
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor,
    *,
    reference_features: ReferenceFeatures | None = None,
    noisy_reference_latents: torch.Tensor | None = None,
    reference_embeds: torch.Tensor | None = None,
    guidance_image: float = 5.0,
    guidance_text: float = 7.5,
    pooling: Pooling | str | None = None,
) -> torch.Tensor:
    """Guided noise prediction for a batch of B latents, the three branches run as one batch of 3B.

    Branches: unconditional (no reference, negative prompt), image (reference, negative prompt),
    text+image (reference, prompt). Reference features are computed once and shared by both
    reference branches; pass them directly, or pass `noisy_reference_latents` (k, C, h, w) and
    `reference_embeds` (1, L, D) to have the Reference UNet compute them here.
    """
    if reference_features is None:
        if noisy_reference_latents is None or reference_embeds is None:
            raise ValueError("give reference_features, or noisy_reference_latents and reference_embeds")
        reference_features = unets.reference_features(noisy_reference_latents, timestep, reference_embeds)
    batch = latents.shape[0]
    prompt_embeds = prompt_embeds.expand(batch, -1, -1)
    negative_embeds = negative_embeds.expand(batch, -1, -1)
    eps = unets.base_noise(
        torch.cat([latents] * 3),
        timestep,
        torch.cat([negative_embeds, negative_embeds, prompt_embeds]),
        features=reference_features,
        rows=torch.arange(batch, 3 * batch, device=latents.device),
        pooling=pooling,
    )
    eps_uncond, eps_image, eps_text = eps.chunk(3)
    return combine_guidance(eps_uncond, eps_image, eps_text, guidance_image, guidance_text)
