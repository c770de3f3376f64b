"""`BootPIGPipeline`: diffusers-style inference for zero-shot personalized generation."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from transformers import CLIPTextModel, CLIPTokenizer

from model.attention import ReferenceFeatures
from model.compiled_blocks import compile_stateless_blocks
from model.config import (
    ONCE_PER_JOB,
    GenerationConfig,
    MethodConfig,
    Pooling,
    field_default,
    parse_reference_schedule,
    reference_side,
)
from model.guidance import guided_noise_prediction
from model.reference_noise import noised_references
from model.step_graph import GraphedStep, graphs_available
from model.text import encode_text
from model.unets import BootPIGUNets

METHOD_CONFIG_NAME = "bootpig_config.json"
REF_UNET, BASE_UNET = "ref_unet", "base_unet"
# Noise of the once-per-job reference pass: fixed, so its features depend only on the references,
# their caption, size and timestep and the weights, and a subject's features can be cached across jobs.
ONCE_NOISE_SEED = 0


class GenerationCancelled(RuntimeError):
    """Raised between denoising steps when the caller's cancellation hook says stop."""


@dataclass
class BootPIGOutput:
    images: list[Image.Image]
    seed: int | None = None
    # With reference_schedule="once": the features used, to pass back in for the next job of a subject.
    reference_features: ReferenceFeatures | None = None


def _is_local(path: str | Path) -> bool:
    return Path(path).expanduser().is_dir()


def has_bootpig_weights(path: str | Path) -> bool:
    """A folder carries BootPIG weights when it holds both `ref_unet/` and `base_unet/`."""
    folder = Path(path).expanduser()
    return (folder / REF_UNET).is_dir() and (folder / BASE_UNET).is_dir()


def load_method_config(path: str | Path | None) -> MethodConfig:
    """Read the method settings a checkpoint was trained with (defaults when absent)."""
    if path is not None and (Path(path).expanduser() / METHOD_CONFIG_NAME).is_file():
        return MethodConfig.model_validate(
            json.loads((Path(path).expanduser() / METHOD_CONFIG_NAME).read_text())
        )
    return MethodConfig()


class BootPIGPipeline(DiffusionPipeline):
    """Reference UNet + Base UNet with RSA, three-branch guidance, UniPC by default.

    Load with `from_pretrained(model, bootpig=None)`: `model` is a hub id or a diffusers folder of the
    base model (SD 2.1-base by default); BootPIG weights come from `bootpig` or, when `model` holds
    `ref_unet/` and `base_unet/`, from `model` itself. Without BootPIG weights both UNets start as
    copies of the base UNet.
    """

    model_cpu_offload_seq = "text_encoder->ref_unet->base_unet->vae"

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        ref_unet: UNet2DConditionModel,
        base_unet: UNet2DConditionModel,
        scheduler: SchedulerMixin,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            ref_unet=ref_unet,
            base_unet=base_unet,
            scheduler=scheduler,
        )
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.unets = BootPIGUNets(ref_unet, base_unet)
        self.has_trained_weights = False  # set by from_pretrained when BootPIG weights were loaded
        # On CUDA, replay each job's denoising step as a CUDA graph (`model.step_graph`); same results.
        self.use_cuda_graphs = True

    def compile_blocks(self) -> int:
        """Compile both UNets' stateless blocks (`model.compiled_blocks`); they compile on first use.

        Opt-in (`Settings.compile_blocks`): compiling takes minutes, paid by the first job of each shape.
        """
        return compile_stateless_blocks(self.ref_unet, self.base_unet)

    # ----------------------------------------------------------------- loading and saving
    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        bootpig: str | Path | None = None,
        *,
        torch_dtype: torch.dtype | None = None,
        local_files_only: bool | None = None,
        method: MethodConfig | None = None,
        **kwargs,
    ) -> BootPIGPipeline:
        model = str(Path(model).expanduser()) if _is_local(model) else str(model)
        opts = {"torch_dtype": torch_dtype, "local_files_only": local_files_only, **kwargs}
        opts = {k: v for k, v in opts.items() if v is not None}
        if bootpig is None and _is_local(model) and has_bootpig_weights(model):
            bootpig = model
        if bootpig is not None and not has_bootpig_weights(bootpig):
            raise FileNotFoundError(f"BootPIG checkpoint {bootpig} must hold {REF_UNET}/ and {BASE_UNET}/")

        def unet(subfolder: str) -> UNet2DConditionModel:
            source, sub = (str(bootpig), subfolder) if bootpig is not None else (model, "unet")
            return UNet2DConditionModel.from_pretrained(source, subfolder=sub, **opts)

        pipe = cls(
            vae=AutoencoderKL.from_pretrained(model, subfolder="vae", **opts),
            text_encoder=CLIPTextModel.from_pretrained(model, subfolder="text_encoder", **opts),
            tokenizer=CLIPTokenizer.from_pretrained(
                model, subfolder="tokenizer", local_files_only=opts.get("local_files_only", False)
            ),
            ref_unet=unet(REF_UNET),
            base_unet=unet(BASE_UNET),
            scheduler=UniPCMultistepScheduler.from_pretrained(
                model, subfolder="scheduler", local_files_only=opts.get("local_files_only", False)
            ),
        )
        pipe.set_method(method or load_method_config(bootpig))
        pipe.has_trained_weights = bootpig is not None
        return pipe

    def set_method(self, method: MethodConfig) -> None:
        self.unets.method = method

    @property
    def method(self) -> MethodConfig:
        return self.unets.method

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:  # type: ignore[override]
        super().save_pretrained(save_directory, **kwargs)
        (Path(save_directory) / METHOD_CONFIG_NAME).write_text(self.method.model_dump_json(indent=2))

    @property
    def native_size(self) -> int:
        """Side of the base model's native resolution: the default output size."""
        return int(self.base_unet.config.sample_size) * self.vae_scale_factor

    @property
    def reference_size(self) -> int:
        """The native size (older name, used by callers as the default output and preparation size).

        The side the Reference UNet actually sees is `model.config.reference_side(height, width,
        reference_size)`: the output's larger side unless a request sets it.
        """
        return self.native_size

    # ----------------------------------------------------------------- building blocks
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        return encode_text(self.tokenizer, self.text_encoder, prompt)

    def encode_images(self, images: list[Image.Image], size: tuple[int, int]) -> torch.Tensor:
        """VAE latents (scaled) of RGB images resized to `size` = (width, height)."""
        arrays = [np.asarray(img.convert("RGB").resize(size, Image.Resampling.BICUBIC)) for img in images]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        pixels = pixels.to(self.vae.device, self.vae.dtype)
        return self.vae.encode(pixels).latent_dist.mode() * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> list[Image.Image]:
        pixels = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        pixels = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return [Image.fromarray(a) for a in pixels.permute(0, 2, 3, 1).cpu().numpy()]

    @torch.no_grad()
    def once_reference_features(
        self,
        reference_latents: torch.Tensor,
        reference_embeds: torch.Tensor,
        timestep: int = field_default(GenerationConfig, "reference_timestep"),
    ) -> ReferenceFeatures:
        """Reference features of the fast mode: references noised to one fixed timestep with fixed noise.

        The result depends only on its inputs and the weights, so a caller may keep it for the next job
        of the same subject (same references, caption, size and timestep) and pass it to `__call__`.
        """
        noise = randn_tensor(
            reference_latents.shape,
            generator=torch.Generator("cpu").manual_seed(ONCE_NOISE_SEED),
            device=reference_latents.device,
            dtype=reference_latents.dtype,
        )
        # The forward process at `timestep` itself (any timestep, whatever schedule the scheduler holds).
        alpha_bar = self.scheduler.alphas_cumprod[timestep].to(reference_latents.device, torch.float32)
        noisy = alpha_bar.sqrt() * reference_latents.float() + (1 - alpha_bar).sqrt() * noise.float()
        t = torch.tensor([timestep], device=reference_latents.device)
        return self.unets.reference_features(noisy.to(reference_latents.dtype), t, reference_embeds)

    # ----------------------------------------------------------------- generation
    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        reference_images: list[Image.Image],
        *,
        reference_prompt: str | None = None,
        negative_prompt: str = field_default(GenerationConfig, "negative_prompt"),
        num_images: int = field_default(GenerationConfig, "num_images"),
        generator: torch.Generator | None = None,
        height: int | None = None,
        width: int | None = None,
        steps: int = field_default(GenerationConfig, "steps"),
        guidance_image: float = field_default(GenerationConfig, "guidance_image"),
        guidance_text: float = field_default(GenerationConfig, "guidance_text"),
        pooling: Pooling | str | None = None,
        reference_size: int | None = field_default(GenerationConfig, "reference_size"),
        reference_schedule: int | str = field_default(GenerationConfig, "reference_schedule"),
        reference_timestep: int = field_default(GenerationConfig, "reference_timestep"),
        reference_features: ReferenceFeatures | None = None,
        callback: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        output_type: str = "pil",
    ) -> BootPIGOutput:
        """Generate `num_images` images of the referenced object as the prompt describes.

        `reference_images` are already prepared (object on white, see `model.references`); they are
        resized to `reference_side(height, width, reference_size)`. `reference_schedule` says how
        often the Reference UNet runs (1: every step, exact; m: every m steps; "once": once per job at
        `reference_timestep`). With "once", `reference_features` from an earlier job's output (same
        references, caption, size and timestep) skip the Reference UNet entirely.
        `callback(step, total)` runs after every denoising step; `should_cancel()` is checked before
        every step and raises `GenerationCancelled` when it returns true.
        """
        schedule = parse_reference_schedule(reference_schedule)
        if reference_features is not None and schedule != ONCE_PER_JOB:
            raise ValueError('precomputed reference_features need reference_schedule="once"')
        if reference_features is None and not 1 <= len(reference_images) <= 8:
            raise ValueError("give between 1 and 8 reference images")
        height = height or self.native_size
        width = width or self.native_size
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}")
        device, dtype = self.base_unet.device, self.base_unet.dtype

        prompt_embeds = self.encode_prompt(prompt)
        negative_embeds = self.encode_prompt(negative_prompt)
        reference_embeds = self.encode_prompt(reference_prompt if reference_prompt is not None else prompt)
        reference_embeds = reference_embeds.to(dtype)
        reference_latents = None
        if reference_features is None:
            side = reference_side(height, width, reference_size)
            reference_latents = self.encode_images(reference_images, (side, side)).to(dtype)
        if schedule == ONCE_PER_JOB and reference_features is None:
            reference_features = self.once_reference_features(
                reference_latents, reference_embeds, reference_timestep
            )

        self.scheduler.set_timesteps(steps, device=device)
        shape = (
            num_images,
            self.base_unet.config.in_channels,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        latents = latents * self.scheduler.init_noise_sigma

        timesteps = self.scheduler.timesteps
        prompt_embeds, negative_embeds = prompt_embeds.to(dtype), negative_embeds.to(dtype)

        def predict(model_input: torch.Tensor, t: torch.Tensor, *noisy_reference: torch.Tensor):
            """One step's model work: reference features (when given noised references), Eq. 4."""
            step_features = features
            if noisy_reference:
                step_features = self.unets.reference_features(noisy_reference[0], t, reference_embeds)
            return guided_noise_prediction(
                self.unets,
                model_input,
                t,
                prompt_embeds,
                negative_embeds,
                reference_features=step_features,
                guidance_image=guidance_image,
                guidance_text=guidance_text,
                pooling=pooling,
            )

        # Exact and once-per-job steps all have the same work: replay it as a CUDA graph on a GPU.
        # (Every m steps alternates two kinds of step and runs eagerly.)
        graphed = (
            GraphedStep(predict)
            if self.use_cuda_graphs and graphs_available(device) and schedule in (1, ONCE_PER_JOB)
            else None
        )
        features = reference_features
        # Re-noised to each step's timestep with fresh noise (the paper's Sec. 3.3), all made up front.
        renoised_steps = [] if schedule == ONCE_PER_JOB else list(range(0, len(timesteps), schedule))
        noisy_references = (
            noised_references(
                self.scheduler, reference_latents, [timesteps[i] for i in renoised_steps], generator
            )
            if renoised_steps
            else None
        )
        try:
            if features is not None:
                self.unets.project_reference_features(features)
            for i, t in enumerate(self.progress_bar(timesteps)):
                if should_cancel is not None and should_cancel():
                    raise GenerationCancelled(f"cancelled before step {i + 1} of {len(timesteps)}")
                noisy_reference: tuple[torch.Tensor, ...] = ()
                if noisy_references is not None and i % schedule == 0:
                    noisy_reference = (noisy_references[i // schedule],)
                    if graphed is None:  # the eager path keeps the features for the next m - 1 steps
                        features = self.unets.reference_features(noisy_reference[0], t, reference_embeds)
                        noisy_reference = ()
                model_input = self.scheduler.scale_model_input(latents, t)
                noise = (graphed or predict)(model_input, t, *noisy_reference)
                latents = self.scheduler.step(noise, t, latents).prev_sample
                if callback is not None:
                    callback(i + 1, len(timesteps))
        finally:
            if graphed is not None:
                graphed.release()
            self.unets.release_reference_cache()

        kept = reference_features if schedule == ONCE_PER_JOB else None
        if output_type == "latent":
            return BootPIGOutput(images=latents, reference_features=kept)  # type: ignore[arg-type]
        return BootPIGOutput(images=self.decode_latents(latents), reference_features=kept)
