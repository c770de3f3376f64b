"""Does a trained BootPIG use its references? A diagnostic of the toy world (docs/toyworld.md).

It measures the diffusion loss on triplets with and without the reference (`keep_reference`), through
the training loop's own `training_loss`: a model that uses its references has a clearly lower loss with
them. (Oracle triplets from the renderer are a toy-world setting, `ToyWorldConfig.triplet_source`.)

    python benchmarks/toyworld_reference_gain.py --world runs/toyworld --data runs/toyworld/triplets \
        --weights untrained runs/toyworld/bootpig/white-erasing/final
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from model.toyworld.config import ToyWorldConfig
from model.train.config import TrainConfig
from model.train.dataset import TripletDataset, collate
from model.train.loop import load_models, training_loss


def world_config(world: Path) -> ToyWorldConfig:
    """The run's settings; one absent from an older config.json counts as its default, as when resuming."""
    return ToyWorldConfig.model_validate_json((world / "config.json").read_text())


@torch.no_grad()
def reference_gain(world: Path, data: Path, weights: str, batches: int, batch_size: int) -> dict[str, float]:
    """Mean loss with and without the reference on the same batches, noise and timesteps; references are
    noised as the world's training noised them (its `train_reference_timestep`)."""
    settings = world_config(world)
    config = TrainConfig(
        model=str(world / "base-model"),
        data=str(data),
        output=str(world / ".gain"),
        resolution=settings.size,
        reference_timestep=settings.train_reference_timestep,
        init_bootpig=None if weights == "untrained" else weights,
        local_files_only=True,
        caption_drop=0.0,
    )
    models = load_models(config)
    models.unets.eval()
    dataset = TripletDataset(data, config.resolution, config.augmentation, config.reference_caption, 0)
    losses = {}
    for name, drop in (("with", 0.0), ("without", 1.0)):
        settings = config.model_copy(update={"reference_drop": drop})
        total = 0.0
        for b in range(batches):
            batch = collate([dataset[(b * batch_size + i) % len(dataset)] for i in range(batch_size)])
            total += float(training_loss(models.unets, models, batch, settings))
        losses[name] = total / batches
    losses["gain_percent"] = 100 * (losses["without"] - losses["with"]) / losses["without"]
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="a triplet folder")
    parser.add_argument("--weights", nargs="+", required=True, help="'untrained' or BootPIG checkpoints")
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for weights in args.weights:
        result = reference_gain(args.world, args.data, weights, args.batches, args.batch_size)
        print(json.dumps({"weights": weights} | {k: round(v, 4) for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    main()
