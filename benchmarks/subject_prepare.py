"""What a prepared subject saves per job: reference preparation that jobs naming a subject skip.

Measured side by side in one process on this machine:
  1. tiny model, one whole job (steps as given, segment=none) from the raw photos vs from the subject's
     prepared references (lossless WebP at the reference size), including image decoding;
  2. TRACER-B7 (carvekit architecture, random weights: same cost as the real ones) segmenting the photos,
     which a subject does once instead of in every job;
  3. the SD 2.1 VAE encoder (random weights) encoding the references at 512 px: what caching latents
     on top would save (jobs still pay it; see the report).

    python benchmarks/subject_prepare.py --references 3 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from model.config import GenerationConfig, Segmenter
from model.generate import generate
from model.references import TracerSegmenter, load_image, prepare_references
from model.tiny import make_tiny_model
from worker.subjects import encode_reference

DREAMBOOTH = Path(__file__).resolve().parents[1].parent / "shared" / "dreambooth" / "dog"


def timed(*functions, repeats: int) -> list[float]:
    """Median process CPU seconds of each function, calls interleaved (a shared, busy machine skews wall
    time; CPU time and alternation keep the comparison fair), after one warm-up call each."""
    for function in functions:
        function()
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, samples in zip(functions, times, strict=True):
            start = time.process_time()
            function()
            samples.append(time.process_time() - start)
    return [statistics.median(samples) for samples in times]


def gflop(function) -> float:
    """Floating-point operations of one call (the device-independent cost, for estimating a GPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops() / 1e9


def sd21_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=768,
    ).eval()


def random_tracer(directory: Path) -> TracerSegmenter:
    from carvekit.ml.wrap.tracer_b7 import TracerUniversalB7

    weights = directory / "tracer_b7_random.pth"
    model = TracerUniversalB7(device="cpu", load_pretrained=False, model_path=weights)
    torch.save(model.state_dict(), weights)
    return TracerSegmenter(weights, "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-tracer", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = [path.read_bytes() for path in sorted(DREAMBOOTH.glob("*.jpg"))[: args.references]]

    with tempfile.TemporaryDirectory() as tmp:
        from model.pipeline import BootPIGPipeline

        pipe = BootPIGPipeline.from_pretrained(make_tiny_model(Path(tmp) / "tiny"), local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        size = pipe.reference_size
        prepared = [
            encode_reference(image)
            for image in prepare_references([load_image(p) for p in photos], size, Segmenter.none)
        ]
        config = GenerationConfig(prompt="a dog on the beach", steps=args.steps, seed=0, segment="none")
        config = config.model_copy(update={"height": size, "width": size})

        raw_job, subject_job = timed(
            lambda: generate(pipe, [load_image(p) for p in photos], config),
            lambda: generate(pipe, [load_image(p) for p in prepared], config),
            repeats=args.repeats,
        )
        raw_prep, subject_prep = timed(
            lambda: prepare_references([load_image(p) for p in photos], size, Segmenter.none),
            lambda: prepare_references([load_image(p) for p in prepared], size, Segmenter.none),
            repeats=args.repeats * 5,
        )
        print(f"photos: {args.references} DreamBooth JPEGs, {sum(map(len, photos)) / 1024:.0f} KiB uploaded")
        print(f"prepared references: {sum(map(len, prepared)) / 1024:.1f} KiB (lossless WebP, {size} px)")
        print(f"CPU seconds, {args.threads} threads; tiny model, segment=none:")
        print(
            f"  reference preparation: photos {raw_prep * 1000:.1f} ms, subject {subject_prep * 1000:.1f} ms"
        )
        print(
            f"  whole job ({args.steps} steps): photos {raw_job * 1000:.1f} ms, "
            f"subject {subject_job * 1000:.1f} ms"
        )

        if not args.skip_tracer:
            tracer = random_tracer(Path(tmp))
            images = [load_image(p) for p in photos]
            (segmentation,) = timed(lambda: tracer(images), repeats=1)
            tracer_gflop = gflop(lambda: tracer.model.forward(torch.randn(1, 3, 640, 640)))
            print(f"TRACER-B7: {tracer_gflop:.0f} GFLOP per photo")
            print(
                f"TRACER-B7 (640 px input, CPU, {args.threads} threads): {segmentation:.2f} s for "
                f"{args.references} photos = {segmentation / args.references:.2f} s per photo; saved per job"
            )

        vae = sd21_vae()
        pixels = torch.randn(args.references, 3, 512, 512)
        print(f"SD VAE encoder: {gflop(lambda: vae.encode(pixels[:1])):.0f} GFLOP per 512 px reference")
        with torch.inference_mode():
            (encoding,) = timed(lambda: vae.encode(pixels).latent_dist.mode(), repeats=1)
        print(
            f"SD VAE encoder (512 px, CPU): {encoding:.2f} s for {args.references} references "
            f"= {encoding / args.references:.2f} s each; still paid per job (latents not cached)"
        )


if __name__ == "__main__":
    main()
