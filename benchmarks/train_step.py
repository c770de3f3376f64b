"""Samples/s and peak memory of one BootPIG training step (Algorithm 1), tiny model and SD 2.1-base size.

Cases (each runs in its own subprocess, so peak memory belongs to that case alone):

* ``tiny``: the complete step of `model.train.loop` — VAE-encode target and reference, text encoder,
  both UNets (Reference UNet -> RSA -> Base UNet), MSE, backward, grad clipping and AdamW on both
  parameter groups — on the tiny random model, from synthetic images.
* ``sd21``: the UNets of SD 2.1-base's size (`model.tiny.sd21_base_unet`, random weights), fed random
  latents and random text embeddings: the VAE and the OpenCLIP text encoder are left out (frozen and run
  without gradients they are a small share of a step; building random 1B-parameter encoders on a CPU would
  dominate the run). ``--optimizer`` says what is updated: ``none`` = forward + backward only (the
  default on CPU, where AdamW state for the 866M-parameter Reference UNet would add ~7 GB),
  ``rsa`` = AdamW on the Base UNet's attn1 weights only, ``all`` = the real optimizer.

    python benchmarks/train_step.py                      # tiny (64 px, batch 4) and sd21 (256 px, batch 1)
    python benchmarks/train_step.py --case sd21 --optimizer all --device cuda --resolution 512 --batch 4

Peak memory: CUDA = `torch.cuda.max_memory_allocated`; CPU = the process's peak RSS (VmHWM) and its
growth over the RSS after building the models (weights), i.e. activations + gradients + optimizer state.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def rss_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def tiny_step_fn(args, device):
    """The real training step of `model.train.loop` on the tiny model."""
    import tempfile

    from accelerate.utils import set_seed

    from model.tiny import make_tiny_model
    from model.train.config import TrainConfig
    from model.train.loop import load_models, trainable_parameters, training_loss

    set_seed(0)
    folder = make_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    config = TrainConfig(
        model=str(folder), data=".", output=".", resolution=args.resolution, local_files_only=True
    )
    models = load_models(config)
    models.unets.to(device)
    models.vae.to(device)
    models.text_encoder.to(device)
    reference, rsa = trainable_parameters(models.unets)
    if args.gradient_checkpointing:
        from model.train.recompute import enable_gradient_checkpointing

        enable_gradient_checkpointing(models.unets)
    models.unets.train()
    optimizer = torch.optim.AdamW(
        [{"params": reference, "lr": config.lr_reference}, {"params": rsa, "lr": config.lr_rsa}],
        betas=config.adam_betas,
        weight_decay=config.weight_decay,
        eps=config.adam_epsilon,
    )
    side, b = args.resolution, args.batch
    batch = {
        "target": torch.rand(b, 3, side, side) * 2 - 1,
        "reference": torch.rand(b, 3, side, side) * 2 - 1,
        "caption": ["A photo of a red backpack, on a bench in a park"] * b,
        "reference_caption": ["a photo of a red backpack"] * b,
        "seed": torch.arange(b),
    }

    def step():
        loss = training_loss(models.unets, models, batch, config)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference + rsa, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, sum(p.numel() for p in models.unets.parameters())


def sd21_step_fn(args, device):
    """Both UNets at SD 2.1-base size, random latents and embeddings (no VAE, no text encoder)."""
    from model.tiny import sd21_base_unet
    from model.train.loop import trainable_parameters
    from model.unets import BootPIGUNets

    torch.manual_seed(0)
    unets = BootPIGUNets(sd21_base_unet(), sd21_base_unet())
    unets.to(device)
    reference, rsa = trainable_parameters(unets)
    if args.gradient_checkpointing:
        from model.train.recompute import enable_gradient_checkpointing

        enable_gradient_checkpointing(unets)
    unets.train()
    params = {
        "none": [],
        "rsa": [{"params": rsa}],
        "all": [{"params": reference}, {"params": rsa, "lr": 1e-6}],
    }
    optimizer = torch.optim.AdamW(params[args.optimizer], lr=5e-6) if args.optimizer != "none" else None
    b, h = args.batch, args.resolution // 8
    latents = torch.randn(b, 4, h, h, device=device)
    references = torch.randn(b, 4, h, h, device=device)
    embeds = torch.randn(b, 77, 1024, device=device)
    timesteps = torch.randint(0, 1000, (b,), device=device)
    dtype = {"bf16": torch.bfloat16, "no": None}[args.mixed_precision]

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            prediction = unets(latents, timesteps, embeds, references, embeds)
        loss = F.mse_loss(prediction.float(), latents)
        loss.backward()
        if optimizer is not None:
            torch.nn.utils.clip_grad_norm_(reference + rsa, 1.0)
            optimizer.step()
        for p in reference + rsa:
            p.grad = None

    return step, sum(p.numel() for p in unets.parameters())


def run_case(args) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    build = {"tiny": tiny_step_fn, "sd21": sd21_step_fn}[args.case]
    started = time.perf_counter()
    step, parameters = build(args, device)
    built = time.perf_counter() - started
    rss_weights = rss_kib("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)  # robust to other jobs on a shared machine
    result = {
        "case": args.case,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "resolution": args.resolution,
        "batch": args.batch,
        "optimizer": args.optimizer if args.case == "sd21" else "adamw (ref + rsa)",
        "gradient_checkpointing": args.gradient_checkpointing,
        "unet_parameters_M": round(parameters / 1e6, 1),
        "build_s": round(built, 1),
        "median_step_s": round(seconds, 3),
        "step_times_s": [round(t, 3) for t in times],
        "samples_per_s": round(args.batch / seconds, 3),
        "rss_after_build_GiB": round(rss_weights / 2**20, 2),
        "peak_rss_GiB": round(rss_kib("VmHWM") / 2**20, 2),
        "peak_rss_growth_GiB": round((rss_kib("VmHWM") - rss_weights) / 2**20, 2),
    }
    if device.type == "cuda":
        result["peak_cuda_GiB"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=["tiny", "sd21", "both"], default="both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolution", type=int, default=None, help="default: tiny 64, sd21 256")
    parser.add_argument("--batch", type=int, default=None, help="default: tiny 4, sd21 1")
    parser.add_argument("--optimizer", choices=["none", "rsa", "all"], default=None, help="sd21 only")
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no", help="sd21 only")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="measured steps (default: tiny 10, sd21 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child-process output
    args = parser.parse_args()

    if args.case == "both":
        for case in ("tiny", "sd21"):
            argv = [a for a in sys.argv[1:] if a not in ("--case", "both")]
            out = subprocess.run(
                [sys.executable, __file__, "--case", case, "--json", *argv],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            print(json.dumps(json.loads(out.strip().splitlines()[-1])))
        return
    tiny = args.case == "tiny"
    args.resolution = args.resolution or (64 if tiny else 256)
    args.batch = args.batch or (4 if tiny else 1)
    args.steps = args.steps or (10 if tiny else 2)
    args.optimizer = args.optimizer or ("all" if args.device.startswith("cuda") else "none")
    print(json.dumps(run_case(args)))


if __name__ == "__main__":
    main()
