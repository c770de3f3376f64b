"""The Reference UNet and the Base UNet, wired together through RSA processors."""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from model.attention import ReferenceContext, ReferenceFeatures, install_reference_processors
from model.config import AttentionImpl, MethodConfig, Pooling


class BootPIGUNets(torch.nn.Module):
    """Both UNets as one module, so training (DDP) and inference call a single object.

    `forward` is the training step's prediction: one reference per sample. Inference uses
    `reference_features` once per step and `base_noise` on the three guidance branches.
    """

    def __init__(
        self,
        ref_unet: UNet2DConditionModel,
        base_unet: UNet2DConditionModel,
        method: MethodConfig | None = None,
        attention_impl: AttentionImpl | str = AttentionImpl.merged,
    ):
        super().__init__()
        self.ref_unet = ref_unet
        self.base_unet = base_unet
        self.method = method or MethodConfig()
        self.context = ReferenceContext(impl=AttentionImpl(attention_impl))
        install_reference_processors(ref_unet, base_unet, self.context)

    @property
    def attention_impl(self) -> AttentionImpl:
        """`merged` (default, fast) or `direct` (the reference transcription); same results."""
        return self.context.impl

    @attention_impl.setter
    def attention_impl(self, impl: AttentionImpl | str) -> None:
        self.context.impl = AttentionImpl(impl)

    def reference_features(
        self,
        noisy_reference_latents: torch.Tensor,
        timestep: torch.Tensor | int,
        reference_embeds: torch.Tensor,
    ) -> ReferenceFeatures:
        """Run the Reference UNet and return each self-attention's input, shaped (k, R, M, C).

        Without gradients the pass ends at the last self-attention's input (the rest is unused).

        noisy_reference_latents: (k, C, h, w) for k references shared by every row, or (k, R, C, h, w)
        for R rows with their own references. reference_embeds: (1 or R, L, D). timestep: scalar or (R,).
        """
        if noisy_reference_latents.ndim == 4:
            noisy_reference_latents = noisy_reference_latents.unsqueeze(1)
        k, rows = noisy_reference_latents.shape[:2]
        latents = noisy_reference_latents.flatten(0, 1)
        embeds = reference_embeds.expand(rows, -1, -1).repeat(k, 1, 1)
        timesteps = torch.as_tensor(timestep, device=latents.device).reshape(-1).expand(rows).repeat(k)
        with self.context.record(k) as recorded:
            self.ref_unet(latents, timesteps, embeds)
        return {name: h.view(k, rows, *h.shape[1:]) for name, h in recorded.items()}

    def base_noise(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor | int,
        encoder_hidden_states: torch.Tensor,
        features: ReferenceFeatures | None = None,
        rows: torch.Tensor | None = None,
        pooling: Pooling | str | None = None,
    ) -> torch.Tensor:
        """Base UNet prediction; `rows` (default: all) attend to `features` through RSA.

        Passing the same `features` object again (features reused over steps) reuses the reference
        keys and values the Base UNet projected from them; `release_reference_cache` frees them.
        """
        with self.context.inject(
            features, rows, pooling or self.method.pooling, self.method.reference_key_scale
        ):
            return self.base_unet(latents, timestep, encoder_hidden_states).sample

    @torch.no_grad()
    def project_reference_features(self, features: ReferenceFeatures) -> None:
        """Project the reference keys/values of every RSA layer now, for reuse while `features` are.

        Fast mode calls this once per job, so no denoising step pays for it.
        """
        with self.context.inject(features, None, self.method.pooling, self.method.reference_key_scale):
            for name, f_ref in features.items():
                attn = self.base_unet.get_submodule(name)
                attn.processor.reference_keys_values(attn, f_ref)

    def release_reference_cache(self) -> None:
        self.context.release_projections()

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        noisy_reference_latents: torch.Tensor,
        reference_embeds: torch.Tensor,
        keep_reference: torch.Tensor | None = None,
        reference_timesteps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training prediction: sample b sees its own reference b where `keep_reference[b]` is true.
        `reference_timesteps` (default: `timesteps`) is what the references were noised to."""
        if keep_reference is None:
            keep_reference = torch.ones(noisy_latents.shape[0], dtype=torch.bool, device=noisy_latents.device)
        rows = keep_reference.nonzero().squeeze(1)
        features = None
        if len(rows) > 0:
            features = self.reference_features(
                noisy_reference_latents[rows].unsqueeze(0),
                (timesteps if reference_timesteps is None else reference_timesteps)[rows],
                reference_embeds[rows],
            )
        return self.base_noise(noisy_latents, timesteps, encoder_hidden_states, features, rows)
