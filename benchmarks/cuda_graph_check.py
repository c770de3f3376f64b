"""The pipeline with and without CUDA graphs gives the same images (a GPU check; CPU has no graphs).

Builds the tiny random-weight model, generates with every reference schedule (exact, every 3 steps,
once per job) and k = 1 and 3, once eagerly and once with the step replayed as a CUDA graph, and prints
the largest difference of the final latents relative to their range and the seconds of each job.

    python benchmarks/cuda_graph_check.py --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from PIL import Image

from model.pipeline import BootPIGPipeline
from model.step_graph import graphs_available
from model.tiny import make_tiny_model


def generate(pipe: BootPIGPipeline, k: int, schedule, graphs: bool) -> tuple[torch.Tensor, float]:
    pipe.use_cuda_graphs = graphs
    references = [Image.new("RGB", (64, 64), (40 * i, 200, 255 - 40 * i)) for i in range(k)]
    start = time.perf_counter()
    latents = pipe(
        "a photo of a toy",
        references,
        steps=12,
        reference_schedule=schedule,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    ).images
    torch.cuda.synchronize()
    return latents.float(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp16")
    parser.add_argument("--model", help="a tiny model folder made beforehand (default: made here)")
    parser.add_argument(
        "--compile", action="store_true", help="then also compare with the stateless blocks compiled"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if not graphs_available(device):
        raise SystemExit("CUDA graphs need a CUDA device")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or make_tiny_model(folder)
        pipe = BootPIGPipeline.from_pretrained(model, torch_dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    worst, eager_runs = 0.0, {}
    for k in (1, 3):
        for schedule in (1, 3, "once"):
            generate(pipe, k, schedule, True)  # warm both paths' libraries
            eager, eager_s = eager_runs[k, schedule] = generate(pipe, k, schedule, False)
            graphed, graphed_s = generate(pipe, k, schedule, True)
            error = ((graphed - eager).abs().max() / eager.abs().max()).item()
            worst = max(worst, error)
            print(
                f"k={k} schedule={schedule!s:5s} eager {eager_s:6.3f} s  graph {graphed_s:6.3f} s  "
                f"max |graph - eager| / max |eager| = {error:.1e}"
            )
    if args.compile:
        count = pipe.compile_blocks()
        print(f"compiled {count} stateless blocks; compiled + graph against plain eager:")
        for (k, schedule), (eager, _) in eager_runs.items():
            generate(pipe, k, schedule, True)  # compiles
            compiled, compiled_s = generate(pipe, k, schedule, True)
            error = ((compiled - eager).abs().max() / eager.abs().max()).item()
            worst = max(worst, error)
            print(f"k={k} schedule={schedule!s:5s} compiled+graph {compiled_s:6.3f} s  rel. diff {error:.1e}")
    print(f"worst relative difference: {worst:.1e} ({'ok' if worst < 1e-2 else 'MISMATCH'})")


if __name__ == "__main__":
    main()
