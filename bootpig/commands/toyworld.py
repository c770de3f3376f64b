"""`bootpig toyworld --out DIR`: build the toy world and run synth -> train -> eval on it, resumably.

See docs/toyworld.md. Every stage goes through the production code (`bootpig synth`, `bootpig train`,
`bootpig eval`, `BootPIGPipeline`); the toy world only adds the renderer, the toy networks and this driver.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "toyworld",
        help="prove on a CPU that the recipe learns zero-shot personalization (toy world benchmark)",
        description="Render a procedural world, train a tiny base model, encoders and segmenter, then run "
        "bootpig synth, train and eval on it. Rerun the same command to resume.",
    )
    p.add_argument("--out", required=True, help="run folder (created; rerun to resume)")
    p.add_argument("--reduced", action="store_true", help="the smallest run that passes every stage (tests)")
    p.add_argument("--until", default=None, help="stop after this stage (world, classifier, ... report)")
    p.add_argument(
        "--only",
        default=None,
        help="run just this stage (its inputs must exist), e.g. `--only encoders` in a second process "
        "while the first trains the base model",
    )
    p.add_argument(
        "--config",
        default=None,
        help="a JSON file of `ToyWorldConfig` settings (e.g. another run's config.json with one size "
        "changed) instead of the defaults; --seed and --ablation still apply on top",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed of the whole world (default: 0, or the --config file's)"
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also train and evaluate with noise-filled random erasing (about 15 more minutes)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: every core this process may use; use 1 on a shared machine)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=None,
        help="run classifier, encoders and vae side by side in this many processes (default: the cores)",
    )
    p.add_argument("--export", default=None, help="afterwards, write the trained model (service layout) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import time

    import torch

    from model.toyworld.config import ToyWorldConfig, reduced_config
    from model.toyworld.driver import ToyWorld

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = args.threads or cores
    processes = args.processes or cores
    if threads < 1 or processes < 1:
        raise ValueError("--threads and --processes must be at least 1")
    torch.set_num_threads(threads)
    if args.config and args.reduced:
        raise ValueError("--config and --reduced are alternatives: pick one")
    if args.config:
        config = ToyWorldConfig.model_validate_json(Path(args.config).read_text())
    else:
        config = reduced_config() if args.reduced else ToyWorldConfig()
    config = config.model_copy(
        update=({"seed": args.seed} if args.seed is not None else {})
        | ({"erasing_ablation": True} if args.ablation else {})
    )
    world = ToyWorld(args.out, config, progress=not args.no_progress)
    started = time.perf_counter()
    stages = world.run(until=args.until, only=args.only, processes=processes)
    for name, info in stages.items():
        print(f"{name:>11}: {info['seconds']:8.1f} s")
    seconds = sum(info["seconds"] for info in stages.values())
    print(f"total: {seconds:.1f} s of stages (side-by-side ones overlap)")
    print(f"this command: {time.perf_counter() - started:.1f} s of wall time")
    if "report" in stages:
        print(world.path("results.md").read_text())
    if args.export:
        path = world.export(args.export)
        print(f"wrote the trained toy model to {path}")
    return 0
