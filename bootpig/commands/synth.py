"""`bootpig synth`: make (target, mask, caption) training triplets from captions, a text-to-image model
and a segmenter (paper Section 3.4). Defaults come from `model.synth.config.SynthSettings`."""

from __future__ import annotations

import argparse
import sys

from bootpig.settings import get_settings
from model.synth.config import SynthSettings

CAPTION_SOURCES = ("offline", "openai", "local")


def register(subparsers) -> None:
    s = SynthSettings()
    p = subparsers.add_parser(
        "synth",
        help="synthesize training triplets (captions -> images -> masks)",
        description="Write the triplet folder `bootpig train --data` reads. Resumable and shardable.",
    )
    p.add_argument(
        "--model",
        default=get_settings().model,
        help="text-to-image model: hub id or diffusers folder, e.g. stabilityai/stable-diffusion-2-1-base "
        "(default: BOOTPIG_MODEL)",
    )
    p.add_argument(
        "--captions", choices=CAPTION_SOURCES, default="offline", help="caption source (default: offline)"
    )
    p.add_argument("--count", type=int, required=True, help="total samples over all shards")
    p.add_argument("--out", required=True, help="triplet folder (created; rerun to resume)")
    p.add_argument("--shard", default="0/1", help="i/n: do the samples with index %% n == i (default: 0/1)")
    p.add_argument("--captions-only", action="store_true", help="write DIR/captions.jsonl and stop")
    p.add_argument("--seed", type=int, default=0, help="seed of offline captions and renders (default: 0)")
    p.add_argument("--resolution", type=int, default=s.resolution, help="target side (default: %(default)s)")
    p.add_argument("--steps", type=int, default=s.steps, help="denoising steps (default: %(default)s)")
    p.add_argument("--guidance-scale", type=float, default=s.guidance_scale, help="default: %(default)s")
    p.add_argument("--negative-prompt", default=s.negative_prompt, help="default: %(default)r")
    p.add_argument(
        "--batch-size", type=int, default=s.batch_size, help="images per batch (default: %(default)s)"
    )
    p.add_argument("--segmenter", default=s.segmenter, help="CLIPSeg hub id or folder (default: %(default)s)")
    p.add_argument("--llm-model", default=None, help="chat model name (openai) or hub id/folder (local)")
    p.add_argument(
        "--llm-base-url", default=s.llm_base_url, help="OpenAI-compatible API root (default: %(default)s)"
    )
    p.add_argument(
        "--mask-threshold",
        type=float,
        default=s.mask.threshold,
        help="object probability (default: %(default)s)",
    )
    p.add_argument(
        "--border-margin",
        type=int,
        default=s.mask.border_margin,
        help="reject masks this close to the border, px at 512 px (default: %(default)s)",
    )
    p.add_argument(
        "--min-area", type=float, default=s.mask.min_area, help="area fraction (default: %(default)s)"
    )
    p.add_argument(
        "--max-area", type=float, default=s.mask.max_area, help="area fraction (default: %(default)s)"
    )
    p.add_argument("--device", default=get_settings().device, help="auto, cuda, cuda:N or cpu")
    p.add_argument("--dtype", default=get_settings().dtype, help="auto (fp16 on CUDA), fp16, bf16 or fp32")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.set_defaults(func=run)


def caption_source(args: argparse.Namespace, settings: SynthSettings, device, dtype):
    from model.synth.captions import LLMCaptions, LocalChat, OfflineCaptions, OpenAIChat

    if args.captions == "offline":
        return OfflineCaptions(seed=args.seed)
    if args.captions == "openai":
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        chat = OpenAIChat(
            args.llm_base_url,
            args.llm_model or settings.llm_model,
            key,
            temperature=settings.llm_temperature,
            timeout=settings.llm_timeout,
        )
    else:
        chat = LocalChat(
            args.llm_model or settings.local_llm,
            device=device,
            torch_dtype=dtype,
            max_new_tokens=settings.local_max_new_tokens,
            temperature=settings.llm_temperature,
            local_files_only=get_settings().local_files_only,
        )
    return LLMCaptions(chat, settings.captions_per_request, settings.max_llm_requests)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from model.errors import describe_validation_error
    from model.loading import resolve_device, resolve_dtype
    from model.synth.config import MaskFilter
    from model.synth.run import RenderSettings, ensure_captions, parse_shard, synthesize

    settings = SynthSettings()
    shard, num_shards = parse_shard(args.shard)
    if args.count < 1:
        raise ValueError("--count must be at least 1")
    if args.batch_size < 1 or args.steps < 1:
        raise ValueError("--batch-size and --steps must be at least 1")
    if args.resolution < 64 or args.resolution % 8:
        raise ValueError("--resolution must be a multiple of 8, at least 64")
    try:
        rules = MaskFilter(
            threshold=args.mask_threshold,
            border_margin=args.border_margin,
            min_area=args.min_area,
            max_area=args.max_area,
            black_level=settings.mask.black_level,
        )
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from exc
    if not args.model and not args.captions_only:
        raise ValueError("give --model (a text-to-image hub id or folder) or set BOOTPIG_MODEL")
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)

    source = caption_source(args, settings, device, dtype)
    try:
        captions = ensure_captions(args.out, args.count, source, num_shards=num_shards)
    except RuntimeError as exc:  # the LLM endpoint failed or wrote nothing usable
        print(f"bootpig synth: error: {exc}", file=sys.stderr)
        return 1
    del source  # a local LLM's weights are not needed for rendering
    if args.captions_only:
        print(f"{len(captions)} captions in {args.out}/captions.jsonl")
        return 0

    from model.synth.render import TextToImageRenderer
    from model.synth.segment import ClipSegSegmenter

    local_only = get_settings().local_files_only
    renderer = TextToImageRenderer(args.model, device, dtype, local_files_only=local_only)
    segmenter = ClipSegSegmenter(args.segmenter, device, dtype, local_files_only=local_only)
    render = RenderSettings(
        resolution=args.resolution,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        negative_prompt=args.negative_prompt,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    summary = synthesize(
        args.out,
        captions,
        renderer,
        segmenter,
        rules,
        render,
        shard=shard,
        num_shards=num_shards,
        progress=not args.no_progress,
    )
    print(summary.line())
    return 0
