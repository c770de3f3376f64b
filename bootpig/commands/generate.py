"""`bootpig generate`: personalized images from reference photos and a prompt, on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from bootpig.commands.common import add_model_flags
from model.config import MAX_REFERENCES, GenerationConfig, Pooling, Segmenter, field_default


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate images of a referenced object (no server needed)")
    add_model_flags(p)
    d = lambda name: field_default(GenerationConfig, name)  # noqa: E731
    p.add_argument(
        "--ref", action="append", required=True, help=f"reference photo (repeat, 1-{MAX_REFERENCES})"
    )
    p.add_argument("--prompt", required=True)
    p.add_argument("--reference-prompt", default=d("reference_prompt"), help="default: the prompt")
    p.add_argument("--negative-prompt", default=d("negative_prompt"))
    p.add_argument("--seed", type=int, default=d("seed"), help="default: random (printed)")
    p.add_argument("--steps", type=int, default=d("steps"))
    p.add_argument("--height", type=int, default=None, help="default: the model's native size")
    p.add_argument("--width", type=int, default=None, help="default: the model's native size")
    p.add_argument("--num-images", type=int, default=d("num_images"))
    p.add_argument(
        "--pooling", choices=[m.value for m in Pooling], default=None, help="default: the checkpoint's"
    )
    p.add_argument("--guidance-image", type=float, default=d("guidance_image"), help="eta_im")
    p.add_argument("--guidance-text", type=float, default=d("guidance_text"), help="eta_txt")
    p.add_argument(
        "--reference-size", type=int, default=d("reference_size"), help="default: the output's larger side"
    )
    p.add_argument(
        "--reference-schedule",
        default=None,
        help="Reference UNet every m steps (1 = exact) or 'once' per job (fast mode); default: the "
        "checkpoint's ('once' when it was trained with a fixed reference timestep, else 1)",
    )
    fallback = d("reference_timestep")
    p.add_argument(
        "--reference-timestep",
        type=int,
        default=None,
        help=f"for 'once'; default: the checkpoint's, else {fallback}",
    )
    p.add_argument(
        "--segment", choices=[m.value for m in Segmenter], default=None, help="default: BOOTPIG_SEGMENT"
    )
    p.add_argument("--tracer-weights", default=None, help="tracer_b7.pth (default: BOOTPIG_TRACER_WEIGHTS)")
    p.add_argument("--out", required=True, help="output PNG; several images get -0, -1, ... suffixes")
    p.set_defaults(func=run)


def output_paths(out: str, count: int) -> list[Path]:
    path = Path(out)
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix or '.png'}") for i in range(count)]


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bootpig.settings import get_settings, load_served_pipeline
    from model.config import resolve_generation_config
    from model.errors import describe_validation_error
    from model.generate import SegmenterCache, generate
    from model.references import load_image

    settings = get_settings()
    overrides = {"model": args.model, "checkpoint": args.bootpig, "device": args.device, "dtype": args.dtype}
    pipe, info = load_served_pipeline(settings.model_copy(update=overrides))
    pipe.set_progress_bar_config(disable=False, desc="denoising")
    values = {
        "prompt": args.prompt,
        "reference_prompt": args.reference_prompt,
        "negative_prompt": args.negative_prompt,
        "num_images": args.num_images,
        "seed": args.seed,
        "steps": args.steps,
        "guidance_image": args.guidance_image,
        "guidance_text": args.guidance_text,
        "height": args.height,
        "width": args.width,
        "pooling": args.pooling,
        "segment": args.segment or settings.segment,
        "reference_size": args.reference_size,
        "reference_schedule": args.reference_schedule,
        "reference_timestep": args.reference_timestep,
    }
    try:
        config = resolve_generation_config(values, pipe.reference_size, pipe.method)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from exc
    if not 1 <= len(args.ref) <= MAX_REFERENCES:
        raise ValueError(f"give between 1 and {MAX_REFERENCES} --ref images")
    images = [load_image(path) for path in args.ref]
    segmenters = SegmenterCache(args.tracer_weights or settings.tracer_weights, info.device)
    result = generate(pipe, images, config, segmenters)
    paths = output_paths(args.out, len(result.images))
    for image, path in zip(result.images, paths, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    print(f"seed {result.seed}: wrote {', '.join(map(str, paths))}")
    return 0
