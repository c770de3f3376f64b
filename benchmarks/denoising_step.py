"""Time one denoising step of BootPIG (k = 1, 2, 4 references) against a vanilla SD CFG step.

Both run on the same UNet weights in one process, side by side, so the ratios are meaningful even on a
busy machine. BootPIG's step = Reference UNet on k noised references + Base UNet on the three guidance
branches; vanilla = the UNet on two classifier-free-guidance branches.

    python benchmarks/denoising_step.py --config tiny --resolution 64
    python benchmarks/denoising_step.py --config sd21 --resolution 256 --repeats 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import threading
import time

import psutil
import torch

from model.guidance import combine_guidance, guided_noise_prediction
from model.tiny import sd21_base_unet, tiny_unet
from model.unets import BootPIGUNets


class PeakMemory:
    """Peak device memory (CUDA) or peak process RSS growth (CPU, sampled) during a block."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        self.process, self.base, self.running = psutil.Process(), psutil.Process().memory_info().rss, True
        self.peak_rss = self.base
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.running = False
            self.thread.join()
            self.peak = self.peak_rss - self.base


def timed(fn, repeats: int, device: torch.device) -> tuple[float, int]:
    fn()  # warm-up
    times, peak = [], 0
    for _ in range(repeats):
        with PeakMemory(device) as mem:
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        peak = max(peak, mem.peak)
    return statistics.median(times), peak


def report(label: str, seconds: float, ratio: float, peak_bytes: int) -> None:
    print(f"{label:34s} {seconds * 1000:9.1f} ms  {ratio:4.2f}x  peak +{peak_bytes / 2**20:7.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=["tiny", "sd21"], default="tiny")
    parser.add_argument("--resolution", type=int, default=None, help="image side (default 64 tiny, 256 sd21)")
    parser.add_argument("--refs", default="1,2,4")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    resolution = args.resolution or (64 if args.config == "tiny" else 256)
    torch.manual_seed(0)
    base = tiny_unet() if args.config == "tiny" else sd21_base_unet()
    base = base.to(device).eval() if dtype == torch.float32 else base.to(device, dtype).eval()
    unets = BootPIGUNets(copy.deepcopy(base), base)
    params = sum(p.numel() for p in base.parameters())
    dim = base.config.cross_attention_dim
    side = resolution // 8
    latents = torch.randn(1, 4, side, side, device=device, dtype=dtype)
    text = torch.randn(1, 77, dim, device=device, dtype=dtype)
    t = torch.tensor(500, device=device)

    @torch.no_grad()
    def vanilla_step():
        # Without reference features the RSA processors are plain SDPA self-attention: vanilla SD.
        uncond, cond = unets.base_noise(torch.cat([latents] * 2), t, torch.cat([text, text])).chunk(2)
        return combine_guidance(uncond, uncond, cond, 0.0, 7.5)

    print(
        f"UNet {args.config}: {params / 1e6:.1f}M parameters, {resolution}px, {device}, {args.dtype}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    base_time, base_mem = timed(vanilla_step, args.repeats, device)
    report("vanilla SD CFG (2 branches)", base_time, 1.0, base_mem)
    for k in (int(x) for x in args.refs.split(",")):
        refs = torch.randn(k, 4, side, side, device=device, dtype=dtype)

        @torch.no_grad()
        def bootpig_step(refs=refs):
            return guided_noise_prediction(
                unets, latents, t, text, text, noisy_reference_latents=refs, reference_embeds=text
            )

        step_time, mem = timed(bootpig_step, args.repeats, device)
        label = f"BootPIG k={k} (ref UNet + 3 branches)"
        report(label, step_time, step_time / base_time, mem)


if __name__ == "__main__":
    main()
