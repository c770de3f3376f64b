"""Does a trained BootPIG use its references? Two diagnostics of the toy world (docs/toyworld.md).

`oracle` writes training triplets from the renderer's ground truth (image, true mask, caption) in the
production manifest format, so `bootpig train` can learn from perfect data and bad synthetic data can be
told apart from a recipe that does not learn. `gain` measures the diffusion loss on triplets with and
without the reference (`keep_reference`), through the training loop's own `training_loss`: a model that
uses its references has a clearly lower loss with them.

    python benchmarks/toyworld_reference_gain.py oracle --world runs/toyworld --count 1000 --out runs/oracle
    python benchmarks/toyworld_reference_gain.py gain --world runs/toyworld --data runs/toyworld/triplets \
        --weights untrained runs/toyworld/bootpig/white-erasing/final
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.toyworld.config import ToyWorldConfig
from model.toyworld.data import scene_bank
from model.toyworld.world import SHAPES
from model.train.config import TrainConfig
from model.train.dataset import TripletDataset, collate
from model.train.loop import load_models, training_loss
from model.triplets import TripletRecord, append_record, mask_path, target_path


def world_config(world: Path) -> ToyWorldConfig:
    """The run's settings; one absent from an older config.json counts as its default, as when resuming."""
    return ToyWorldConfig.model_validate_json((world / "config.json").read_text())


def write_oracle_triplets(world: Path, count: int, out: Path) -> None:
    config = world_config(world)
    bank = scene_bank(world / "world" / "scenes-train.npz", config.scene_images, config.size, 0)
    (out / "targets").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    for i in range(min(count, len(bank))):
        sample_id = f"{i:08d}"
        Image.fromarray(bank.images[i]).save(out / target_path(sample_id))
        Image.fromarray(bank.masks[i].astype(np.uint8) * 255).save(out / mask_path(sample_id))
        record = TripletRecord(
            id=sample_id,
            target=target_path(sample_id),
            mask=mask_path(sample_id),
            caption=bank.captions[i],
            object=SHAPES[bank.shapes[i]],
        )
        append_record(out, record)
    print(f"wrote {min(count, len(bank))} oracle triplets to {out}")


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
    commands = parser.add_subparsers(dest="command", required=True)
    oracle = commands.add_parser("oracle", help="triplets from the renderer's ground truth")
    oracle.add_argument("--world", type=Path, required=True)
    oracle.add_argument("--count", type=int, default=1000)
    oracle.add_argument("--out", type=Path, required=True)
    gain = commands.add_parser("gain", help="loss with vs. without the reference")
    gain.add_argument("--world", type=Path, required=True)
    gain.add_argument("--data", type=Path, required=True, help="a triplet folder")
    gain.add_argument("--weights", nargs="+", required=True, help="'untrained' or BootPIG checkpoint folders")
    gain.add_argument("--batches", type=int, default=24)
    gain.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "oracle":
        write_oracle_triplets(args.world, args.count, args.out)
        return
    for weights in args.weights:
        result = reference_gain(args.world, args.data, weights, args.batches, args.batch_size)
        print(json.dumps({"weights": weights} | {k: round(v, 4) for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    main()
