"""The BootPIG training loop (the paper's Algorithm 1), on one GPU, many GPUs or the CPU.

`training_loss` is one micro-batch of it: VAE-encode target and reference, draw one timestep per sample
for both, noise them independently, run the Reference UNet (its self-attention inputs feed the Base
UNet's RSA layers), regress the Base UNet's prediction on the scheduler's target. `train` is the outline
(set up, then per update: accumulate gradients, step AdamW, log, checkpoint); its helpers follow it in
that order.

Every random draw of sample number k (data order, augmentation, caption/reference drops, timestep,
noise) is seeded from (seed, k), so a resumed run repeats an uninterrupted one exactly (on CPU and
with deterministic kernels; GPU atomics may differ in the last bits).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DistributedDataParallelKwargs, gather_object, set_seed
from diffusers import AutoencoderKL, DDPMScheduler
from diffusers.optimization import get_scheduler
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from model.pipeline import BootPIGPipeline
from model.text import encode_text
from model.train.checkpoint import (
    FINAL_DIR,
    TrainingProgress,
    export_weights,
    register_export_hooks,
    resume_directory,
    save_checkpoint,
)
from model.train.config import TrainConfig
from model.train.dataset import SampleNumbers, TripletDataset, collate
from model.train.recompute import enable_gradient_checkpointing
from model.unets import BootPIGUNets

log = get_logger(__name__)  # logs on the main process only

# Base UNet weights that RSA trains: the projections of every self-attention (attn1).
RSA_PARAMETER = re.compile(r"\.attn1\.(to_q|to_k|to_v|to_out)\.")


@dataclass
class Models:
    """Everything a training step needs; only `unets` holds trainable weights."""

    unets: BootPIGUNets
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    noise_scheduler: DDPMScheduler


@dataclass
class TrainResult:
    losses: dict[int, float] = field(default_factory=dict)  # update step (1-based) -> mean loss
    final: Path | None = None
    skipped_samples: list[str] = field(default_factory=list)
    is_main_process: bool = True


def load_models(config: TrainConfig) -> Models:
    """Base model + starting BootPIG weights, through the same loader the service uses."""
    pipe = BootPIGPipeline.from_pretrained(
        config.model,
        bootpig=config.init_bootpig,
        method=config.method,
        local_files_only=config.local_files_only or None,
    )
    # The inference scheduler (UniPC) shares the noise schedule; DDPM gives add_noise/get_velocity.
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    return Models(pipe.unets, pipe.vae, pipe.text_encoder, pipe.tokenizer, noise_scheduler)


def trainable_parameters(unets: BootPIGUNets) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """Freeze everything but the Reference UNet and the Base UNet's attn1 projections."""
    unets.requires_grad_(False)
    reference = list(unets.ref_unet.parameters())
    rsa = [p for name, p in unets.base_unet.named_parameters() if RSA_PARAMETER.search(name)]
    for p in reference + rsa:
        p.requires_grad_(True)
    return reference, rsa


@torch.no_grad()
def encode_captions(models: Models, captions: list[str]) -> torch.Tensor:
    return encode_text(models.tokenizer, models.text_encoder, captions)


@dataclass
class SampleDraws:
    """The random choices of a micro-batch, each sample's from its own seed."""

    timesteps: torch.Tensor
    noise: torch.Tensor
    reference_noise: torch.Tensor
    vae_noise: torch.Tensor  # for sampling both posteriors: (2B, C, h, w), targets first
    drop_caption: torch.Tensor
    drop_reference: torch.Tensor

    def to(self, device: torch.device) -> SampleDraws:
        return SampleDraws(*(getattr(self, f.name).to(device) for f in fields(self)))


def draw(
    seeds: torch.Tensor, latent_shape: tuple[int, ...], config: TrainConfig, timesteps: int
) -> SampleDraws:
    rows = []
    for seed in seeds.tolist():
        g = torch.Generator().manual_seed(seed)
        rows.append(
            (
                torch.randint(0, timesteps, (), generator=g),
                torch.rand((), generator=g) < config.caption_drop,
                torch.rand((), generator=g) < config.reference_drop,
                torch.randn(latent_shape, generator=g),
                torch.randn(latent_shape, generator=g),
                torch.randn(latent_shape, generator=g),
                torch.randn(latent_shape, generator=g),
            )
        )
    t, drop_caption, drop_reference, noise, ref_noise, eps_target, eps_ref = (
        torch.stack(c) for c in zip(*rows, strict=True)
    )
    return SampleDraws(t, noise, ref_noise, torch.cat([eps_target, eps_ref]), drop_caption, drop_reference)


def training_loss(
    model: Callable[..., torch.Tensor], models: Models, batch: dict, config: TrainConfig
) -> torch.Tensor:
    """One micro-batch of Algorithm 1: the MSE between the Base UNet's prediction and its target."""
    vae, scheduler = models.vae, models.noise_scheduler
    device = vae.device
    with torch.no_grad():
        pixels = torch.cat([batch["target"], batch["reference"]]).to(device, vae.dtype)
        posterior = vae.encode(pixels).latent_dist
        latent_shape = tuple(posterior.mean.shape[1:])
        draws = draw(batch["seed"], latent_shape, config, scheduler.config.num_train_timesteps).to(device)
        latents = (posterior.mean + posterior.std * draws.vae_noise.to(posterior.mean.dtype)).float()
        latents = latents * vae.config.scaling_factor
        target_latents, reference_latents = latents.chunk(2)

        t = draws.timesteps  # one timestep per sample, shared by target and reference (the paper)...
        noisy_latents = scheduler.add_noise(target_latents, draws.noise, t)
        fixed = config.reference_timestep  # ...unless the references get one fixed timestep
        t_reference = t if fixed is None else torch.full_like(t, fixed)
        noisy_reference = scheduler.add_noise(reference_latents, draws.reference_noise, t_reference)
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(target_latents, draws.noise, t)
        elif scheduler.config.prediction_type == "epsilon":
            target = draws.noise
        else:
            raise ValueError(f"unsupported prediction_type {scheduler.config.prediction_type!r}")

        captions = [
            "" if drop else c for c, drop in zip(batch["caption"], draws.drop_caption.tolist(), strict=True)
        ]
        embeds = encode_captions(models, captions)
        reference_embeds = encode_captions(models, batch["reference_caption"])

    prediction = model(
        noisy_latents,
        t,
        embeds,
        noisy_reference,
        reference_embeds,
        keep_reference=~draws.drop_reference,
        reference_timesteps=t_reference,
    )
    if config.snr_gamma is not None:
        weight = min_snr_weight(scheduler, t, config.snr_gamma)
    elif config.clean_image_weight_cap is not None:
        weight = clean_image_weight(scheduler, t, config.clean_image_weight_cap)
    else:
        return F.mse_loss(prediction.float(), target.float())
    error = (prediction.float() - target.float()).pow(2).mean(dim=tuple(range(1, target.dim())))
    return (weight.to(error.device) * error).mean()


def _snr_and_error_scale(scheduler: DDPMScheduler, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SNR at `t`, and the squared target error per unit of clean-image error: SNR (epsilon), SNR + 1 (v)."""
    alphas = scheduler.alphas_cumprod.to(t.device)[t]
    snr = alphas / (1 - alphas)
    return snr, snr + 1 if scheduler.config.prediction_type == "v_prediction" else snr


def min_snr_weight(scheduler: DDPMScheduler, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR, gamma) / SNR for epsilon targets, / (SNR + 1) for v: the nearly clean timesteps, whose loss
    is fine texture nothing else can supply, stop drowning out the noisy ones where a reference helps."""
    snr, denominator = _snr_and_error_scale(scheduler, t)
    return snr.clamp(max=gamma) / denominator


def clean_image_weight(scheduler: DDPMScheduler, t: torch.Tensor, cap: float) -> torch.Tensor:
    """The squared error of the implied clean image per unit of the target's squared error, capped:
    1/SNR for epsilon, 1/(SNR + 1) for v. Nearly clean samples, whose image the input already shows,
    fade out; the noisy ones, where a reference is the only source of the subject's look, count most."""
    _, denominator = _snr_and_error_scale(scheduler, t)
    return (1 / denominator).clamp(max=cap)


def _mixed_precision(config: TrainConfig) -> str:
    if config.mixed_precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return config.mixed_precision


@dataclass
class TrainingRun:
    """What the loop carries from update to update once setup is done."""

    accelerator: Accelerator
    model: torch.nn.Module  # the BootPIG UNets as prepared by accelerate (DDP-wrapped on many GPUs)
    models: Models
    trainable: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    lr_scheduler: LRScheduler
    progress: TrainingProgress
    batches: Iterator[dict]


def train(config: TrainConfig, models: Models | None = None) -> TrainResult:
    """Run (or resume) training; returns the per-step losses and the final export's folder.

    `models` (default: loaded from `config.model`) is trained in place, so callers can inspect it.
    """
    run = start_run(config, models)
    result = TrainResult()
    bar = tqdm(
        total=config.max_steps,
        initial=run.progress.step,
        desc="train",
        disable=not run.accelerator.is_local_main_process,
    )
    while run.progress.step < config.max_steps:
        started = time.perf_counter()
        micro_batches = islice(run.batches, run.accelerator.gradient_accumulation_steps)
        loss, skipped = accumulate_gradients(run.accelerator, run.model, run.models, micro_batches, config)
        apply_update(run, config)
        log_update(run, config, result, bar, loss, skipped, time.perf_counter() - started)
        if run.progress.step % config.checkpoint_every == 0 or run.progress.step == config.max_steps:
            save_checkpoint(run.accelerator, config, run.progress)
    bar.close()
    return finish_run(run, config, result)


# --------------------------------------------------------------------------------------- setup
def start_run(config: TrainConfig, models: Models | None) -> TrainingRun:
    """Accelerator, models, optimizer and data stream, resumed from a checkpoint when asked."""
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    if accelerator.is_main_process:
        Path(config.output).mkdir(parents=True, exist_ok=True)
    resume_from = resume_directory(config)
    models = prepare_models(load_models(config) if models is None else models, config, accelerator)
    reference_params, rsa_params = trainable_parameters(models.unets)
    optimizer, lr_scheduler = make_optimizer(config, reference_params, rsa_params)
    # The scheduler is not passed to `prepare`: accelerate would step it once per process.
    model, optimizer = accelerator.prepare(models.unets, optimizer)
    models.unets = accelerator.unwrap_model(model)
    progress = TrainingProgress()
    accelerator.register_for_checkpointing(lr_scheduler, progress)
    register_export_hooks(accelerator, config)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        log.info("resumed from %s at step %d", resume_from, progress.step)
    if config.tensorboard:
        accelerator.init_trackers("bootpig-train")
    batches = training_batches(config, accelerator, progress.step)
    trainable = reference_params + rsa_params
    return TrainingRun(accelerator, model, models, trainable, optimizer, lr_scheduler, progress, batches)


def make_accelerator(config: TrainConfig) -> Accelerator:
    """One process's accelerator: precision, logging and the micro-batches per update."""
    accelerator = Accelerator(
        mixed_precision=_mixed_precision(config),
        log_with="tensorboard" if config.tensorboard else None,
        project_dir=str(Path(config.output) / "logs"),
        # The Reference UNet computes layers after its last self-attention (the tail of its last
        # transformer block, conv_norm_out, conv_out) whose outputs nothing uses, so they get no
        # gradient. DDP must be told to look for such parameters instead of waiting for them forever.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    # Set once the process count is known (it decides the micro-batches per process and update).
    accelerator.gradient_accumulation_steps = config.accumulation_steps(accelerator.num_processes)
    return accelerator


def prepare_models(models: Models, config: TrainConfig, accelerator: Accelerator) -> Models:
    """Frozen encoders on the device in the mixed-precision dtype; UNets in training mode."""
    frozen_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
        accelerator.mixed_precision, torch.float32
    )
    for frozen in (models.vae, models.text_encoder):
        frozen.requires_grad_(False).eval().to(accelerator.device)
        if frozen_dtype != torch.float32:  # frozen encoders run in the mixed-precision dtype
            frozen.to(dtype=frozen_dtype)
    gradient_checkpointing = config.gradient_checkpointing
    if gradient_checkpointing is None:
        gradient_checkpointing = accelerator.device.type == "cuda"
    if gradient_checkpointing:
        enable_gradient_checkpointing(models.unets)
    models.unets.train()
    return models


def make_optimizer(
    config: TrainConfig, reference_params: list[torch.nn.Parameter], rsa_params: list[torch.nn.Parameter]
) -> tuple[torch.optim.Optimizer, LRScheduler]:
    """AdamW with one learning rate per group (Reference UNet, RSA), and its schedule per update."""
    groups = [
        {"params": reference_params, "lr": config.lr_reference},
        {"params": rsa_params, "lr": config.lr_rsa},
    ]
    optimizer = torch.optim.AdamW(
        groups, betas=config.adam_betas, weight_decay=config.weight_decay, eps=config.adam_epsilon
    )
    warmup, steps = config.lr_warmup_steps, config.max_steps
    lr_scheduler = get_scheduler(
        config.lr_scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=steps
    )
    return optimizer, lr_scheduler


def training_batches(config: TrainConfig, accelerator: Accelerator, start_step: int) -> Iterator[dict]:
    """This process's micro-batches from update `start_step` on (see `SampleNumbers`)."""
    dataset = TripletDataset(
        config.data, config.resolution, config.augmentation, config.reference_caption, config.seed
    )
    accumulation = accelerator.gradient_accumulation_steps
    sampler = SampleNumbers(
        start_step,
        config.max_steps,
        config.micro_batch_size,
        accumulation,
        accelerator.num_processes,
        accelerator.process_index,
    )
    log.info(
        "training on %d triplets: %d updates of %d samples (%d per pass x %d accumulation x %d processes)",
        len(dataset),
        config.max_steps,
        config.batch_size,
        config.micro_batch_size,
        accumulation,
        accelerator.num_processes,
    )
    loader = DataLoader(
        dataset,
        batch_size=config.micro_batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=config.num_workers,
        pin_memory=accelerator.device.type == "cuda",
    )
    return iter(loader)


# --------------------------------------------------------------------------------------- one update
def accumulate_gradients(
    accelerator: Accelerator,
    model: Callable[..., torch.Tensor],
    models: Models,
    micro_batches: Iterable[dict],
    config: TrainConfig,
) -> tuple[torch.Tensor, list[str]]:
    """Forward and backward over one update's micro-batches; returns their mean loss and skipped ids.

    `accelerator.accumulate` all-reduces gradients only on the update's last micro-batch, and
    `accelerator.backward` divides each loss by the number of micro-batches, so the gradient is the
    batch mean.
    """
    loss_sum = torch.zeros((), device=accelerator.device)
    skipped: list[str] = []
    for batch in micro_batches:
        skipped += batch["skipped"]
        with accelerator.accumulate(model):
            loss = training_loss(model, models, batch, config)
            accelerator.backward(loss)
        loss_sum += loss.detach() / accelerator.gradient_accumulation_steps
    return loss_sum, skipped


def apply_update(run: TrainingRun, config: TrainConfig) -> None:
    """Clip, step AdamW and the learning rate, clear the gradients: one update done."""
    run.accelerator.clip_grad_norm_(run.trainable, config.max_grad_norm)
    run.optimizer.step()
    run.lr_scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.progress.step += 1


# --------------------------------------------------------------------------------------- logging
def log_update(
    run: TrainingRun,
    config: TrainConfig,
    result: TrainResult,
    bar: tqdm,
    loss: torch.Tensor,
    skipped: list[str],
    seconds: float,
) -> None:
    """Record the update's loss (mean over processes) and skipped samples; show and log metrics."""
    accelerator, progress = run.accelerator, run.progress
    loss_value = accelerator.reduce(loss, reduction="mean").item()
    result.losses[progress.step] = loss_value
    for sample_id in gather_object(skipped):
        if sample_id not in progress.skipped_samples:
            progress.skipped_samples.append(sample_id)
    samples_per_second = config.batch_size / seconds
    lr_reference, lr_rsa = run.lr_scheduler.get_last_lr()
    bar.update(1)
    bar.set_postfix(
        loss=f"{loss_value:.4f}",
        lr=f"{lr_reference:.1e}/{lr_rsa:.1e}",
        samples_s=f"{samples_per_second:.2f}",
        skipped=len(progress.skipped_samples),
    )
    if config.tensorboard and progress.step % config.log_every == 0:
        metrics = {
            "loss": loss_value,
            "lr/reference": lr_reference,
            "lr/rsa": lr_rsa,
            "samples_per_second": samples_per_second,
            "skipped_samples": len(progress.skipped_samples),
        }
        accelerator.log(metrics, step=progress.step)


# --------------------------------------------------------------------------------------- the end
def finish_run(run: TrainingRun, config: TrainConfig, result: TrainResult) -> TrainResult:
    """Export the final weights (main process), report skipped samples, close the trackers."""
    accelerator, progress = run.accelerator, run.progress
    accelerator.wait_for_everyone()
    result.final = Path(config.output) / FINAL_DIR
    if accelerator.is_main_process:
        export_weights(accelerator.unwrap_model(run.model), result.final, config)
    if progress.skipped_samples:
        log.warning(
            "skipped %d bad training samples: %s",
            len(progress.skipped_samples),
            ", ".join(progress.skipped_samples[:20]),
        )
    result.skipped_samples = list(progress.skipped_samples)
    result.is_main_process = accelerator.is_main_process
    accelerator.end_training()
    return result
