"""The synthesis run: captions file -> this shard's samples -> render -> segment -> check -> triplet folder.

Extra files next to the triplet folder's own (see `model.triplets`):

    DIR/captions.jsonl              the numbered caption list every shard reads (made once)
    DIR/rejected-<i>-of-<n>.jsonl   samples shard i of n rendered and rejected, with the reason
    DIR/summary-<i>-of-<n>.json     the last summary of shard i of n

Sample i is caption i, id `%08d`, and belongs to shard `i % n`, so n processes split the work with no
overlap and no coordination. A sample is finished once it is in any manifest or rejected log, so a
rerun (with any shard count) renders only what no run has finished.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from model.files import save_image_atomically, write_text_atomically
from model.synth.captions import Caption, LLMCaptions, OfflineCaptions
from model.synth.config import MaskFilter
from model.synth.render import RenderOutput, sample_seed
from model.synth.segment import RejectReason, best_mask, check_sample
from model.triplets import (
    MASKS_DIR,
    TARGETS_DIR,
    TripletRecord,
    append_record,
    mask_path,
    read_manifest,
    target_path,
)

log = logging.getLogger(__name__)

CAPTIONS_FILE = "captions.jsonl"


def sample_id(index: int) -> str:
    return f"{index:08d}"


def rejected_name(shard: int, num_shards: int) -> str:
    return f"rejected-{shard}-of-{num_shards}.jsonl"


def summary_name(shard: int, num_shards: int) -> str:
    return f"summary-{shard}-of-{num_shards}.json"


def shard_indices(count: int, shard: int, num_shards: int) -> range:
    """The sample indices shard i of n owns: disjoint across shards, together all of 0..count-1."""
    return range(shard, count, num_shards)


# --- the caption list ------------------------------------------------------------------------


def load_captions(out: str | Path) -> list[Caption]:
    path = Path(out) / CAPTIONS_FILE
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Caption(text=row["caption"], object=row["object"]) for row in rows]


def save_captions(out: str | Path, captions: list[Caption]) -> None:
    lines = (
        json.dumps({"id": sample_id(i), "caption": c.text, "object": c.object}) + "\n"
        for i, c in enumerate(captions)
    )
    write_text_atomically(Path(out) / CAPTIONS_FILE, "".join(lines))


def ensure_captions(
    out: str | Path, count: int, source: OfflineCaptions | LLMCaptions, *, num_shards: int = 1
) -> list[Caption]:
    """The first `count` captions of DIR/captions.jsonl, made (or extended) with `source` if needed.

    The file is the source of truth, so every shard and every rerun sees the same numbered list.
    Offline captions are reproducible and each shard may write them; LLM captions are not, so with
    several shards they must be made once beforehand (`bootpig synth --captions-only`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    existing = load_captions(out)
    if len(existing) >= count:
        return existing[:count]
    if isinstance(source, OfflineCaptions):
        captions = source.generate(count)
        if captions[: len(existing)] != existing:
            raise ValueError(
                f"{out / CAPTIONS_FILE} was made with other caption settings (seed?); "
                "use a new --out folder or delete it"
            )
    else:
        if num_shards > 1:
            raise ValueError(
                f"{out / CAPTIONS_FILE} has {len(existing)} of {count} captions; with an LLM and several "
                "shards make them once first: bootpig synth ... --captions-only (without --shard)"
            )
        seen = {caption.key for caption in existing}
        captions = existing + source.generate(count - len(existing), seen=seen)
    save_captions(out, captions)
    log.info("wrote %d captions to %s", len(captions), out / CAPTIONS_FILE)
    return captions


# --- rendering and checking ------------------------------------------------------------------


class Renderer(Protocol):
    name: str

    def render(self, prompts: list[str], seeds: list[int], **kwargs) -> RenderOutput: ...


class Segmenter(Protocol):
    name: str

    def probabilities(self, images: list[Image.Image], phrases: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class RenderSettings:
    resolution: int = 512
    steps: int = 50
    guidance_scale: float = 7.5
    negative_prompt: str = ""
    batch_size: int = 4
    seed: int = 0


class SynthSummary(BaseModel):
    """What one run of one shard did; also written to DIR/summary-<i>-of-<n>.json."""

    shard: int
    num_shards: int
    assigned: int = Field(..., description="Samples this shard owns.")
    already_done: int = Field(..., description="Owned samples an earlier run had finished (skipped).")
    rendered: int = 0
    kept: int = 0
    rejected: dict[str, int] = Field(default_factory=dict, description="Rejections by reason.")
    seconds: float = 0.0

    def line(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        return (
            f"shard {self.shard}/{self.num_shards}: {self.assigned} samples, "
            f"{self.already_done} already done, "
            f"{self.rendered} rendered, {self.kept} kept, rejected: {reasons} ({self.seconds:.1f} s)"
        )


def finished_ids(out: str | Path) -> set[str]:
    """Ids written as triplets or rejected by any earlier run of any shard."""
    out = Path(out)
    done = {record.id for record in read_manifest(out)}
    for path in out.glob("rejected-*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                continue
    return done


def synthesize(
    out: str | Path,
    captions: list[Caption],
    renderer: Renderer,
    segmenter: Segmenter,
    rules: MaskFilter,
    settings: RenderSettings,
    *,
    shard: int = 0,
    num_shards: int = 1,
    progress: bool = True,
) -> SynthSummary:
    """Render, segment and check this shard's unfinished samples, appending triplets as they pass."""
    out = Path(out)
    (out / TARGETS_DIR).mkdir(parents=True, exist_ok=True)
    (out / MASKS_DIR).mkdir(parents=True, exist_ok=True)
    owned = shard_indices(len(captions), shard, num_shards)
    done = finished_ids(out)
    todo = [i for i in owned if sample_id(i) not in done]
    summary = SynthSummary(
        shard=shard, num_shards=num_shards, assigned=len(owned), already_done=len(owned) - len(todo)
    )
    rejected: Counter[str] = Counter()
    start = time.monotonic()
    bar = tqdm(total=len(todo), desc=f"synth {shard}/{num_shards}", unit="img", disable=not progress)
    with bar, (out / rejected_name(shard, num_shards)).open("a", encoding="utf-8") as rejected_log:
        for first in range(0, len(todo), settings.batch_size):
            batch = todo[first : first + settings.batch_size]
            seeds = [sample_seed(settings.seed, i) for i in batch]
            rendered = renderer.render(
                [captions[i].text for i in batch],
                seeds,
                resolution=settings.resolution,
                steps=settings.steps,
                guidance_scale=settings.guidance_scale,
                negative_prompt=settings.negative_prompt,
            )
            probabilities = segmenter.probabilities(rendered.images, [captions[i].object for i in batch])
            summary.rendered += len(batch)
            for index, seed, image, nsfw, probs in zip(
                batch, seeds, rendered.images, rendered.nsfw, probabilities, strict=True
            ):
                caption, sid = captions[index], sample_id(index)
                image = image.convert("RGB")
                mask = best_mask(probs, rules.threshold)
                reason = RejectReason.nsfw if nsfw else check_sample(np.asarray(image), mask, rules)
                if reason is not None:
                    rejected[reason.value] += 1
                    rejected_log.write(
                        json.dumps({"id": sid, "reason": reason.value, "caption": caption.text})
                    )
                    rejected_log.write("\n")
                    rejected_log.flush()
                    continue
                save_image_atomically(image, out / target_path(sid))
                save_image_atomically(Image.fromarray(mask.astype(np.uint8) * 255), out / mask_path(sid))
                record = TripletRecord(
                    id=sid,
                    target=target_path(sid),
                    mask=mask_path(sid),
                    caption=caption.text,
                    object=caption.object,
                    seed=seed,
                    t2i_model=renderer.name,
                    segmenter=segmenter.name,
                )
                append_record(out, record, shard, num_shards)
                summary.kept += 1
            bar.update(len(batch))
            bar.set_postfix(kept=summary.kept, rejected=sum(rejected.values()))
    summary.rejected = dict(rejected)
    summary.seconds = round(time.monotonic() - start, 3)
    write_text_atomically(out / summary_name(shard, num_shards), summary.model_dump_json(indent=2) + "\n")
    return summary
