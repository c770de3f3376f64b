"""`bootpig eval`: the paper's DreamBooth benchmark (CLIP-T, CLIP-I, DINO) with a report.

Resumable (rerun the same command; finished generations are skipped) and shardable (`--shard i/n` on
n GPUs, then one un-sharded call to score). See docs/eval.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bootpig.commands.common import add_model_flags
from model.config import MAX_REFERENCES, Pooling, Segmenter


def register(subparsers) -> None:
    from model.eval.config import DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL, SD_BASELINE, EvalConfig

    d = lambda name: EvalConfig.model_fields[name].default  # noqa: E731
    p = subparsers.add_parser(
        "eval", help="CLIP-T / CLIP-I / DINO on the DreamBooth dataset, with a report and grids"
    )
    add_model_flags(p)
    p.add_argument(
        "--dataset", required=True, help="DreamBooth-layout folder (subject folders + prompts file)"
    )
    p.add_argument("--subjects", default=None, help="comma-separated subset (default: every subject present)")
    p.add_argument("--prompts", type=int, default=None, help="first N prompts per subject (default: all 25)")
    p.add_argument("--images-per-prompt", type=int, default=d("images_per_prompt"))
    p.add_argument(
        "--max-refs",
        type=int,
        default=d("max_refs"),
        help=f"default: all photos of a subject (≤{MAX_REFERENCES})",
    )
    p.add_argument("--steps", type=int, default=d("steps"))
    p.add_argument("--resolution", type=int, default=d("resolution"), help="default: the model's native size")
    p.add_argument("--seed", type=int, default=d("seed"), help="base seed of the per-prompt seeds")
    p.add_argument(
        "--pooling", choices=[m.value for m in Pooling], default=None, help="default: the checkpoint's"
    )
    p.add_argument("--guidance-image", type=float, default=d("guidance_image"), help="eta_im")
    p.add_argument(
        "--guidance-text", type=float, default=d("guidance_text"), help="eta_txt (also the baseline's)"
    )
    p.add_argument("--negative-prompt", default=d("negative_prompt"))
    p.add_argument(
        "--reference-schedule",
        default=None,
        help="Reference UNet every m steps (1 = exact) or 'once' per job (fast mode); "
        "default: the checkpoint's",
    )
    p.add_argument(
        "--reference-timestep", type=int, default=None, help="for 'once'; default: the checkpoint's"
    )
    p.add_argument(
        "--reference-caption",
        choices=["prompt", "object"],
        default=d("reference_caption"),
        help="Reference UNet caption: the prompt, or 'a photo of a [class]' (what training gives it)",
    )
    p.add_argument(
        "--segment", choices=[m.value for m in Segmenter], default=None, help="default: BOOTPIG_SEGMENT"
    )
    p.add_argument("--tracer-weights", default=None, help="tracer_b7.pth (default: BOOTPIG_TRACER_WEIGHTS)")
    p.add_argument(
        "--clip-model", default=DEFAULT_CLIP_MODEL, help="hub id or folder of a transformers CLIPModel"
    )
    p.add_argument("--dino-model", default=DEFAULT_DINO_MODEL, help="hub id or folder of a DINO ViTModel")
    p.add_argument("--baseline", choices=[SD_BASELINE], default=None, help="also run the plain base model")
    p.add_argument("--shard", default=None, help="i/n: generate only every n-th (subject, prompt) pair")
    p.add_argument("--no-grids", action="store_true", help="skip the per-subject grid images")
    p.add_argument("--out", required=True, help="output folder (reuse it to resume)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bootpig.settings import get_settings
    from model.errors import describe_validation_error
    from model.eval.config import EvalConfig
    from model.eval.plan import EvalRequest
    from model.eval.run import run_evaluation
    from model.shards import parse_shard

    settings = get_settings()
    try:
        config = EvalConfig(
            model=args.model,
            bootpig=args.bootpig,
            images_per_prompt=args.images_per_prompt,
            max_refs=args.max_refs,
            steps=args.steps,
            resolution=args.resolution,
            seed=args.seed,
            segment=args.segment or settings.segment,
            pooling=args.pooling,
            guidance_image=args.guidance_image,
            guidance_text=args.guidance_text,
            negative_prompt=args.negative_prompt,
            reference_schedule=args.reference_schedule,
            reference_timestep=args.reference_timestep,
            reference_caption=args.reference_caption,
        )
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from exc
    subjects = [s.strip() for s in args.subjects.split(",") if s.strip()] if args.subjects else None
    request = EvalRequest(
        config=config,
        dataset=Path(args.dataset),
        out=Path(args.out),
        subjects=subjects,
        prompts=args.prompts,
        baseline=args.baseline,
        shard=parse_shard(args.shard) if args.shard else (0, 1),
        clip_model=args.clip_model,
        dino_model=args.dino_model,
        device=args.device,
        dtype=args.dtype,
        demo_model_dir=settings.demo_model_dir,
        local_files_only=settings.local_files_only,
        tracer_weights=Path(args.tracer_weights) if args.tracer_weights else settings.tracer_weights,
        grids=not args.no_grids,
    )
    outcome = run_evaluation(request)
    print(
        f"generated {outcome.generated} images ({outcome.skipped} prompt units already done) "
        f"in {outcome.generation_s:.1f} s"
    )
    if outcome.report is None:
        print(f"shard {args.shard} done; when every shard has finished, rerun without --shard to score")
        return 0
    for key, result in outcome.report["results"].items():
        overall = result["overall"]
        scores = ", ".join(f"{m} {overall[m]:.1f}" for m in ("clip_t", "clip_i", "dino") if m in overall)
        print(f"{key}: {scores} ({overall['images']} images)")
    print(f"wrote {', '.join(str(f) for f in outcome.files[:2])} and {len(outcome.files) - 2} grids")
    return 0
