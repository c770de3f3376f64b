"""A tiny random-weight model in the exact on-disk layout of SD 2.1-base plus BootPIG weights.

No weights can be downloaded where the tests and the demo run, so the project builds its own from
configs: every loader is exercised through the same `from_pretrained` path as real weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel, UniPCMultistepScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from model.config import MethodConfig
from model.tokenizer import build_clip_tokenizer
from model.weights import save_bootpig_weights

TINY_MARKER = "tiny_random_model.txt"
TINY_RESOLUTION = 64


def tiny_unet(cross_attention_dim: int = 32) -> UNet2DConditionModel:
    """SD 2.x-shaped UNet (linear projections, self- and cross-attention at two resolutions)."""
    return UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        norm_num_groups=8,
    )


def sd21_base_unet() -> UNet2DConditionModel:
    """The full SD 2.1-base UNet architecture (its unet/config.json) with random weights, for benchmarks."""
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    )


def tiny_vae() -> AutoencoderKL:
    """Four blocks, so latents are 1/8 of the image side as in SD."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=TINY_RESOLUTION,
    )


def tiny_transformer(hidden_size: int, layers: int, heads: int) -> dict[str, int]:
    """Sizes of a tiny transformer tower (text or vision), its MLP twice as wide as its hidden size."""
    return {
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
    }


def tiny_clip_text_config(hidden_size: int = 32, layers: int = 2, heads: int = 4) -> dict[str, int]:
    """A CLIP text tower with SD's vocabulary and 77 positions, so the offline tokenizer's ids fit."""
    tower = tiny_transformer(hidden_size, layers, heads)
    return {"vocab_size": 49408, "max_position_embeddings": 77, **tower}


def tiny_text_encoder(hidden_size: int = 32) -> CLIPTextModel:
    return CLIPTextModel(
        CLIPTextConfig(**tiny_clip_text_config(hidden_size), hidden_act="gelu", projection_dim=hidden_size)
    )


def tiny_scheduler() -> UniPCMultistepScheduler:
    """SD 2.1-base's noise schedule (scaled linear, 1000 steps, epsilon)."""
    return UniPCMultistepScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        prediction_type="epsilon",
        steps_offset=1,
    )


def sd_pipeline(
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    unet: UNet2DConditionModel,
    tokenizer: CLIPTokenizer | None = None,
) -> StableDiffusionPipeline:
    """SD 2.1's parts around these networks: the offline CLIP tokenizer (or `tokenizer`), UniPC, no
    safety checker."""
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer or build_clip_tokenizer(),
        unet=unet,
        scheduler=tiny_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def make_tiny_model(directory: str | Path, seed: int = 0) -> Path:
    """Write a tiny SD-layout model folder with `ref_unet/` and `base_unet/` BootPIG weights."""
    directory = Path(directory)
    torch.manual_seed(seed)
    unet = tiny_unet()
    sd_pipeline(tiny_vae(), tiny_text_encoder(), unet).save_pretrained(directory)
    # The untrained BootPIG starts both UNets from the base UNet; perturb the reference copy a little
    # so tests can tell the two apart.
    ref_unet = copy.deepcopy(unet)
    with torch.no_grad():
        for p in ref_unet.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    save_bootpig_weights(directory, ref_unet, unet, MethodConfig())
    (directory / TINY_MARKER).write_text(
        "Random-weight demo model made by `bootpig make-tiny-model`. Its images are noise: "
        "it exists to exercise the real loading and serving code without downloadable weights.\n"
    )
    return directory


def is_tiny_model(path: str | Path) -> bool:
    return (Path(path).expanduser() / TINY_MARKER).is_file()
