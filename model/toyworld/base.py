"""The toy base model: a latent text-to-image diffusion model in SD 2.1's folder layout, from scratch.

Same parts as SD 2.1-base (AutoencoderKL, CLIP text encoder + tokenizer, UNet2DConditionModel with
linear projections, UniPC on the scaled-linear schedule), only tiny: a VAE with a 4x downsampling
factor (64 px images -> 16x16 latents) and a three-level UNet. The text encoder is the toy CLIP's text
tower, frozen, as SD uses OpenCLIP's. Saved with
`StableDiffusionPipeline.save_pretrained`, so `AutoPipelineForText2Image` and `BootPIGPipeline` load it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel

from model.text import tokenize
from model.tiny import sd_pipeline, tiny_scheduler
from model.toyworld.data import SceneBank, as_tensor
from model.toyworld.encoders import toy_tokenizer
from model.toyworld.fit import averaged_copy, batches, fit

KL_WEIGHT = 1e-6
LATENT_CHANNELS = 8  # SD has 4 at 1/8 of the side; 8 at 1/4 keeps the patterns of a 64 px world
VAE_CROP = 32  # the VAE is convolutional: it trains on crops, 4x cheaper than whole images
VAE_CHANNELS = (16, 32, 32)  # wider (32, 64, 64) left a lower ceiling at the steps it could afford
VAE_LR = 2e-3


def toy_vae(size: int, channels: tuple[int, int, int] = VAE_CHANNELS) -> AutoencoderKL:
    """Three blocks: latents are 1/4 of the image side (SD: four blocks, 1/8)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        block_out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=size,
    )


def toy_unet(
    latent_size: int,
    cross_attention_dim: int,
    channels: tuple[int, int, int] = (32, 64, 64),
    text_time_embedding: bool = False,
) -> UNet2DConditionModel:
    """SD 2.x-shaped: self- and cross-attention at 16x16 and 8x8, linear projections.

    `text_time_embedding` adds an attention-pooled caption to the timestep embedding (diffusers'
    `addition_embed_type="text"`, as DeepFloyd IF does), so the caption also steers every ResNet block,
    not only the two attention levels."""
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        block_out_channels=channels,
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        norm_num_groups=8,
        addition_embed_type="text" if text_time_embedding else None,
        addition_embed_type_num_heads=4,
    )


def train_vae(
    bank: SceneBank,
    steps: int,
    seed: int,
    progress: bool = True,
    *,
    channels: tuple[int, int, int] = VAE_CHANNELS,
    crop: int = VAE_CROP,
    lr: float = VAE_LR,
) -> AutoencoderKL:
    torch.manual_seed(seed)
    vae = toy_vae(bank.images.shape[1], channels)
    pick = batches(len(bank), 32, seed)
    crop_rng = np.random.default_rng(seed)
    side = bank.images.shape[1]

    def loss_at(step: int) -> torch.Tensor:
        top, left = crop_rng.integers(0, side - crop + 1, 2) // 4 * 4
        x = as_tensor(bank.images[pick(step).numpy(), top : top + crop, left : left + crop])
        posterior = vae.encode(x).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        return (reconstruction - x).abs().mean() + KL_WEIGHT * posterior.kl().mean()

    fit(vae.parameters(), loss_at, steps, lr, "vae", progress=progress)
    vae.eval()
    with torch.no_grad():  # SD scales latents to unit variance; measure the factor on this bank
        latents = encode_bank(vae, bank.images[:512], scale=False)
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    return vae


@torch.no_grad()
def encode_bank(vae: AutoencoderKL, images: np.ndarray, scale: bool = True) -> torch.Tensor:
    """Posterior means of uint8 images, scaled like the pipelines scale them."""
    chunks = [
        vae.encode(as_tensor(images[i : i + 128])).latent_dist.mode() for i in range(0, len(images), 128)
    ]
    latents = torch.cat(chunks)
    return latents * vae.config.scaling_factor if scale else latents


def train_unet(
    bank: SceneBank,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    steps: int,
    seed: int,
    batch_size: int = 32,
    caption_drop: float = 0.1,
    progress: bool = True,
    *,
    channels: tuple[int, int, int] = (32, 64, 64),
    lr: float = 1e-3,
    snr_gamma: float | None = None,
    train_text_encoder: bool = False,
    text_time_embedding: bool = False,
    object_weight: float = 0.0,
    after_step: Callable[[int, UNet2DConditionModel, CLIPTextModel], None] | None = None,
) -> tuple[UNet2DConditionModel, CLIPTextModel]:
    """Epsilon-prediction diffusion loss on cached latents; returns the EMA weights (UNet, text encoder).

    `snr_gamma` weights each sample by min(SNR, gamma) / SNR (min-SNR weighting, Hang et al. 2023):
    the nearly clean timesteps, where the loss is mostly texture, stop drowning out the noisy ones where
    the object's outline is decided. `object_weight` weights each latent pixel by 1 + object_weight x
    (the renderer's mask, widened by one latent pixel), so the object's outline is not drowned out by
    the scene's texture either. `train_text_encoder` trains the text encoder with the UNet, as the
    latent-diffusion paper trained its text transformer from scratch, instead of keeping it frozen as SD
    keeps OpenCLIP's: a contrastive toy CLIP leaves shape words close together. `after_step(step, unet,
    text_encoder)` gets the moving averages, so a caller can sample checkpoints.
    """
    torch.manual_seed(seed)
    latents = encode_bank(vae, bank.images)
    tokenizer = toy_tokenizer()
    unique = sorted(set(bank.captions))
    token_table = tokenize(tokenizer, unique)
    empty_tokens = tokenize(tokenizer, [""])
    caption_index = torch.tensor([unique.index(c) for c in bank.captions])
    pixel_weight = 1 + object_weight * latent_masks(bank.masks, latents.shape[-1])
    text_encoder = copy.deepcopy(text_encoder).requires_grad_(train_text_encoder)
    if not train_text_encoder:
        with torch.no_grad():  # a frozen encoder's contexts are computed once
            table = torch.cat([text_encoder(token_table[i : i + 256])[0] for i in range(0, len(unique), 256)])
            empty = text_encoder(empty_tokens)[0]
    unet = toy_unet(latents.shape[-1], text_encoder.config.hidden_size, channels, text_time_embedding)
    trained = torch.nn.ModuleDict({"unet": unet, "text_encoder": text_encoder})
    ema = averaged_copy(trained)
    noise_scheduler = DDPMScheduler.from_config(tiny_scheduler().config)
    alphas = noise_scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    weight = torch.ones_like(snr) if snr_gamma is None else snr.clamp(max=snr_gamma) / snr
    pick = batches(len(bank), batch_size, seed)

    def loss_at(step: int) -> torch.Tensor:
        idx = pick(step)
        x0 = latents[idx]
        drop = torch.rand(len(idx)) < caption_drop
        if train_text_encoder:
            tokens = torch.where(drop[:, None], empty_tokens, token_table[caption_index[idx]])
            context = text_encoder(tokens)[0]
        else:
            context = torch.where(drop[:, None, None], empty, table[caption_index[idx]])
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(idx),))
        noisy = noise_scheduler.add_noise(x0, noise, t)
        w = pixel_weight[idx]
        error = ((unet(noisy, t, context).sample - noise).pow(2) * w).sum(dim=(1, 2, 3)) / (
            w.sum(dim=(1, 2, 3)) * x0.shape[1]
        )
        return (weight[t] * error).mean()

    fit(
        trained.parameters(),
        loss_at,
        steps,
        lr,
        "base unet",
        progress=progress,
        ema=(trained, ema, 0.998),
        after_step=None if after_step is None else lambda step: after_step(step, ema.unet, ema.text_encoder),
    )
    return ema.unet.eval(), ema.text_encoder.eval().requires_grad_(False)


def latent_masks(masks: np.ndarray, latent_size: int) -> torch.Tensor:
    """(N, 1, h, w) object masks at the latents' size, widened by one latent pixel to take in the outline."""
    m = torch.from_numpy(masks).float()[:, None]
    m = torch.nn.functional.adaptive_max_pool2d(m, latent_size)
    return torch.nn.functional.max_pool2d(m, 3, stride=1, padding=1)


def save_base_model(directory: Path, vae: AutoencoderKL, text_encoder: CLIPTextModel, unet) -> Path:
    """Write SD 2.1's folder layout: model_index.json, vae/, text_encoder/, tokenizer/, unet/, scheduler/."""
    sd_pipeline(vae, text_encoder, unet, toy_tokenizer()).save_pretrained(directory)
    return directory


def text_encoder_from_clip(clip_directory: Path) -> CLIPTextModel:
    """The toy CLIP's text tower as SD's frozen text encoder (SD 2.1 uses OpenCLIP's the same way).

    A random frozen text encoder, tried first, gives the UNet almost nothing to read: the base model's
    samples then ignored shape and scene (13 % / 23 % by the classifier, chance is 12.5 %).
    """
    from transformers import CLIPModel

    clip = CLIPModel.from_pretrained(clip_directory)
    text_encoder = CLIPTextModel(clip.config.text_config)
    text_encoder.load_state_dict(clip.text_model.state_dict())
    return text_encoder.eval().requires_grad_(False)
