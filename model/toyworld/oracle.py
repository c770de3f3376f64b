"""Oracle triplets drawn by the renderer instead of `bootpig synth`: a diagnostic of the recipe.

The recipe's triplets are base-model samples cut out by the tiny CLIPSeg, so a failure to learn can
come from the data (imperfect samples or masks) or from training itself. Renderer triplets hold the
same captions with perfect images and masks, which separates the two:

* `renderer`: the reference is cut out of the target, as Algorithm 1 does;
* `renderer-views`: the reference is another view of the target's subject on white (other size,
  position, flip and rotation), stored beside the target (`model.triplets`), so it cannot carry the
  target's own pixels or layout.

Training reads them through the unchanged `bootpig train` data path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from model.toyworld.world import Rendered, random_sample, views
from model.triplets import (
    MASKS_DIR,
    REFERENCE_MASKS_DIR,
    REFERENCES_DIR,
    TARGETS_DIR,
    TripletRecord,
    append_record,
    mask_path,
    read_manifest,
    reference_mask_path,
    reference_path,
    target_path,
)

RENDERER, RENDERER_VIEWS = "renderer", "renderer-views"
ORACLE_STREAM = 30_000  # oracle subjects come from their own seed stream, never the held-out ones


def _save(rendered: Rendered, folder: Path, image: str, mask: str) -> None:
    rendered.image.save(folder / image)
    Image.fromarray(rendered.mask.astype(np.uint8) * 255, "L").save(folder / mask)


def write_oracle_triplets(
    out: str | Path, count: int, size: int, seed: int, other_view: bool, progress: bool = True
) -> int:
    """Write `count` renderer triplets to the triplet folder `out` (resumes); returns how many it holds."""
    out = Path(out)
    for name in (TARGETS_DIR, MASKS_DIR) + ((REFERENCES_DIR, REFERENCE_MASKS_DIR) if other_view else ()):
        (out / name).mkdir(parents=True, exist_ok=True)
    done = {record.id for record in read_manifest(out)}
    for index in tqdm(range(count), desc="oracle triplets", disable=not progress):
        sample_id = f"{index:08d}"
        if sample_id in done:
            continue
        rng = np.random.default_rng([seed, ORACLE_STREAM, index])  # one stream per triplet: resumable
        sample = random_sample(rng, size)
        _save(sample.rendered, out, target_path(sample_id), mask_path(sample_id))
        separate: dict[str, str] = {}
        if other_view:
            (view,) = views(sample.subject, 1, size, rng)
            image, mask = reference_path(sample_id), reference_mask_path(sample_id)
            separate = {"reference": image, "reference_mask": mask}
            _save(view, out, image, mask)
        record = TripletRecord(
            id=sample_id,
            target=target_path(sample_id),
            mask=mask_path(sample_id),
            caption=sample.caption,
            object=sample.subject.shape,
            seed=index,
            t2i_model=RENDERER_VIEWS if other_view else RENDERER,
            **separate,
        )
        append_record(out, record)
    return len(list(read_manifest(out)))
