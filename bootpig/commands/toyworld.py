"""`bootpig toyworld --out DIR`: build the toy world and run synth -> train -> eval on it, resumably.

See docs/toyworld.md. Every stage goes through the production code (`bootpig synth`, `bootpig train`,
`bootpig eval`, `BootPIGPipeline`); the toy world only adds the renderer, the toy networks and this driver.
"""

from __future__ import annotations

import argparse


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
    p.add_argument("--seed", type=int, default=0, help="seed of the whole world (default: 0)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1; tiny networks gain little from more, and lose a lot "
        "when other processes share the cores)",
    )
    p.add_argument("--export", default=None, help="afterwards, write the trained model (service layout) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from model.toyworld.config import ToyWorldConfig, reduced_config
    from model.toyworld.driver import ToyWorld

    if args.threads < 1:
        raise ValueError("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    config = (reduced_config() if args.reduced else ToyWorldConfig()).model_copy(update={"seed": args.seed})
    world = ToyWorld(args.out, config, progress=not args.no_progress)
    stages = world.run(until=args.until, only=args.only)
    for name, info in stages.items():
        print(f"{name:>11}: {info['seconds']:8.1f} s")
    print(f"total: {sum(info['seconds'] for info in stages.values()):.1f} s")
    if "report" in stages:
        print(world.path("results.md").read_text())
    if args.export:
        path = world.export(args.export)
        print(f"wrote the trained toy model to {path}")
    return 0
