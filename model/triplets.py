"""The triplet folder: where data synthesis (`bootpig synth`) and training (`bootpig train`) meet.

Layout of a triplet folder DIR:

    DIR/targets/<id>.png            generated image (RGB)
    DIR/masks/<id>.png              foreground mask of the object ("L", 255 = object)
    DIR/manifest-<i>-of-<n>.jsonl   one `TripletRecord` per line, written by shard i of n
    DIR/references/<id>.png         optional: another image of the same object ...
    DIR/reference-masks/<id>.png    ... and its mask

By default the reference of a triplet is not stored: training cuts it out of the target with the mask
at every step (with augmentation), as the paper's Algorithm 1 does. A record may instead name another
image of the same object (another photo or view, e.g. from multi-view data); training then cuts the
reference out of that one, so the reference cannot carry the target's own pixels.

Every shard appends to its own manifest, so n processes can write one folder without coordination;
readers merge all `manifest*.jsonl` files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

TARGETS_DIR = "targets"
MASKS_DIR = "masks"
REFERENCES_DIR = "references"
REFERENCE_MASKS_DIR = "reference-masks"
MANIFEST_GLOB = "manifest*.jsonl"


class TripletRecord(BaseModel):
    """One training example; paths are relative to the triplet folder."""

    id: str = Field(..., description="Stable sample id, e.g. '00000042' (the caption's index).")
    target: str = Field(..., description="Relative path of the target PNG.")
    mask: str = Field(..., description="Relative path of the mask PNG.")
    caption: str = Field(..., description="Full caption, 'A photo of a [object], [placement] [scene]'.")
    object: str = Field(..., description="The object phrase, e.g. 'red backpack'.")
    reference: str | None = Field(
        None, description="Relative path of another image of the object to cut the reference from."
    )
    reference_mask: str | None = Field(None, description="Relative path of that image's mask.")
    seed: int | None = Field(None, description="Seed the text-to-image model rendered the target with.")
    t2i_model: str | None = Field(None, description="Text-to-image model id or path.")
    segmenter: str | None = Field(None, description="Segmentation model id or path.")

    @model_validator(mode="after")
    def _reference_with_its_mask(self) -> TripletRecord:
        if (self.reference is None) != (self.reference_mask is None):
            raise ValueError("a separate reference needs both `reference` and `reference_mask`")
        return self

    @property
    def reference_caption(self) -> str:
        """The short caption 'a photo of a [object]' given to the Reference UNet by default."""
        return f"a photo of a {self.object}"


def manifest_name(shard: int = 0, num_shards: int = 1) -> str:
    return f"manifest-{shard}-of-{num_shards}.jsonl"


def target_path(sample_id: str) -> str:
    return f"{TARGETS_DIR}/{sample_id}.png"


def mask_path(sample_id: str) -> str:
    return f"{MASKS_DIR}/{sample_id}.png"


def reference_path(sample_id: str) -> str:
    return f"{REFERENCES_DIR}/{sample_id}.png"


def reference_mask_path(sample_id: str) -> str:
    return f"{REFERENCE_MASKS_DIR}/{sample_id}.png"


def append_record(directory: str | Path, record: TripletRecord, shard: int = 0, num_shards: int = 1) -> None:
    """Append one finished sample (its PNGs already written) to this shard's manifest."""
    path = Path(directory) / manifest_name(shard, num_shards)
    with path.open("a", encoding="utf-8") as f:
        f.write(record.model_dump_json() + "\n")


def read_manifest(directory: str | Path) -> Iterator[TripletRecord]:
    """All records of a folder, every shard's manifest in name order; malformed lines are skipped."""
    for path in sorted(Path(directory).glob(MANIFEST_GLOB)):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                yield TripletRecord.model_validate(json.loads(line))
            except ValueError:
                continue
