"""fp16 / bf16 correctness of one BootPIG guided step against fp32, on the same random weights.

A GPU check (it also runs on CPU for the tiny config): builds the Reference and Base UNets, computes the
guided noise prediction of Eq. 4 for k references in fp32 and in each half precision, and prints the
relative error and whether anything overflowed. Use it together with the timing scripts:

    python benchmarks/precision_check.py --config sd21 --resolution 512 --device cuda
"""

from __future__ import annotations

import argparse
import copy

import torch

from model.guidance import guided_noise_prediction
from model.tiny import sd21_base_unet, tiny_unet
from model.unets import BootPIGUNets

HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def guided_step(unets: BootPIGUNets, inputs: dict[str, torch.Tensor], dtype: torch.dtype, pooling: str):
    cast = {name: (t.to(dtype) if t.is_floating_point() else t) for name, t in inputs.items()}
    with torch.no_grad():
        return guided_noise_prediction(
            unets,
            cast["latents"],
            cast["t"],
            cast["text"],
            cast["negative"],
            noisy_reference_latents=cast["refs"],
            reference_embeds=cast["text"],
            pooling=pooling,
        ).float()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=["tiny", "sd21"], default="tiny")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--refs", default="1,3")
    parser.add_argument("--poolings", default="softmax,argmax,concat")
    args = parser.parse_args()

    device = torch.device(args.device)
    resolution = args.resolution or (64 if args.config == "tiny" else 512)
    torch.manual_seed(0)
    base = (tiny_unet() if args.config == "tiny" else sd21_base_unet()).to(device).eval()
    full = BootPIGUNets(copy.deepcopy(base), base)
    halves = {}
    for name, dtype in HALF.items():
        half_base = copy.deepcopy(base).to(dtype)
        halves[name] = BootPIGUNets(copy.deepcopy(half_base), half_base)
    side, dim = resolution // 8, base.config.cross_attention_dim
    print(f"{args.config} UNet, {resolution}px, {device}: max |half - fp32| / max |fp32| of the guided noise")
    for k in (int(x) for x in args.refs.split(",")):
        inputs = {
            "latents": torch.randn(1, 4, side, side, device=device),
            "refs": torch.randn(k, 4, side, side, device=device),
            "text": torch.randn(1, 77, dim, device=device),
            "negative": torch.randn(1, 77, dim, device=device),
            "t": torch.tensor(500, device=device),
        }
        for pooling in args.poolings.split(","):
            reference = guided_step(full, inputs, torch.float32, pooling)
            scale = reference.abs().max().item()
            cells = []
            for name, unets in halves.items():
                out = guided_step(unets, inputs, HALF[name], pooling)
                finite = bool(torch.isfinite(out).all())
                error = (out - reference).abs().max().item() / scale if finite else float("inf")
                cells.append(f"{name} {error:8.2e}{'' if finite else ' NON-FINITE'}")
            print(f"k={k} {pooling:8s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
