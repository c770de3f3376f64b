"""Write what an evaluation found: `metrics.json`, `report.md` beside the papers' numbers, grids.

Published rows are kept to numbers we can attribute exactly. BootPIG's own row is from the BootPIG paper
(arXiv 2401.13974, Table 1). The reference-images, Textual Inversion and DreamBooth (Stable Diffusion)
rows are from the DreamBooth paper (Ruiz et al., CVPR 2023, Table 1), whose protocol BootPIG follows.
Published numbers used each paper's own encoders and the full 30-subject dataset, so they are context,
not a target a differently configured run must hit.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from model.eval.config import BOOTPIG, SD_BASELINE
from model.eval.plan import EvalRequest, WorkItem, item_paths, reference_photos
from model.files import write_text_atomically
from model.references import load_image


@dataclass(frozen=True)
class PublishedRow:
    method: str
    dino: float | None
    clip_i: float | None
    clip_t: float | None
    source: str


BOOTPIG_PAPER = "BootPIG paper, Table 1"
DREAMBOOTH_PAPER = "DreamBooth paper, Table 1"
PUBLISHED_ROWS = (
    PublishedRow("Reference images", 77.4, 88.5, None, DREAMBOOTH_PAPER),
    PublishedRow("Textual Inversion (SD, fine-tuned)", 56.9, 78.0, 25.5, DREAMBOOTH_PAPER),
    PublishedRow("DreamBooth (SD, fine-tuned)", 66.8, 80.3, 30.5, DREAMBOOTH_PAPER),
    PublishedRow("BootPIG (zero-shot)", 67.4, 79.7, 31.1, BOOTPIG_PAPER),
)
METHOD_LABELS = {
    "reference_images": "Reference images",
    BOOTPIG: "BootPIG",
    SD_BASELINE: "Base model, no references",
}
METRICS = ("dino", "clip_i", "clip_t")
HEADERS = ("DINO", "CLIP-I", "CLIP-T")
THUMBNAIL = 128
GAP = 8


def _cell(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def markdown_report(report: dict) -> str:
    """The headline table (published rows, then this run) and a per-subject table per method."""
    results, settings = report["results"], report["settings"]
    lines = ["# DreamBooth benchmark", ""]
    if report.get("random_weights"):
        lines += [
            "> **Random-weight model:** these numbers measure noise images and mean nothing about BootPIG.",
            "",
        ]
    lines += [
        f"Subjects: {len(report['subjects'])} · prompts per subject: {report['prompts_per_subject']} · "
        f"images per prompt: {settings['images_per_prompt']} · steps: {settings['steps']}",
        f"Encoders: CLIP `{report['encoders']['clip']}`, DINO `{report['encoders']['dino']}`. "
        "Scores are cosine similarities ×100, averaged over generated images.",
        "",
        "| Method | DINO | CLIP-I | CLIP-T | Source |",
        "|---|---:|---:|---:|---|",
    ]
    for row in PUBLISHED_ROWS:
        lines.append(
            f"| {row.method} | {_cell(row.dino)} | {_cell(row.clip_i)} | {_cell(row.clip_t)} | {row.source} |"
        )
    for key, result in results.items():
        overall = result["overall"]
        cells = " | ".join(_cell(overall.get(m)) for m in METRICS)
        label = METHOD_LABELS.get(key, key)
        lines.append(f"| **{label}** | {cells} | this run ({overall['images']} images) |")
    for key, result in results.items():
        lines += [
            "",
            f"## {METHOD_LABELS.get(key, key)} per subject",
            "",
            "| Subject | DINO | CLIP-I | CLIP-T | images |",
        ]
        lines.append("|---|---:|---:|---:|---:|")
        for name, scores in result["subjects"].items():
            cells = " | ".join(_cell(scores.get(m)) for m in METRICS)
            lines.append(f"| {name} | {cells} | {scores['images']} |")
    timing = report["timing"]
    lines += [
        "",
        f"Generation: {timing['generated_images_total']} images in {timing['generation_s_total']:.1f} s "
        f"over all calls ({timing['generated_images']} in this call); scoring {timing['scoring_s']:.1f} s.",
        "",
    ]
    return "\n".join(lines)


def _thumbnail(image: Image.Image, side: int) -> Image.Image:
    return ImageOps.pad(image.convert("RGB"), (side, side), color=(255, 255, 255))


def subject_grid(
    references: list[Image.Image],
    generations: dict[str, list[list[Image.Image]]],
    prompts: list[str],
    side: int = THUMBNAIL,
) -> Image.Image:
    """References in a column on the left | one block per method, one row per prompt | the prompt."""
    label_h, text_w = 16, 2 * side
    columns = max((len(row) for rows in generations.values() for row in rows), default=0)
    rows = max(len(references), *(len(r) for r in generations.values()))
    width = side + len(generations) * (GAP + columns * side) + GAP + text_w
    canvas = Image.new("RGB", (width, label_h + rows * side), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 2), "references", fill=(0, 0, 0))
    for r, image in enumerate(references):
        canvas.paste(_thumbnail(image, side), (0, label_h + r * side))
    x = side
    for method, prompt_rows in generations.items():
        x += GAP
        draw.text((x + 2, 2), METHOD_LABELS.get(method, method), fill=(0, 0, 0))
        for r, row in enumerate(prompt_rows):
            for c, image in enumerate(row):
                canvas.paste(_thumbnail(image, side), (x + c * side, label_h + r * side))
        x += columns * side
    x += GAP
    draw.text((x, 2), "prompt", fill=(0, 0, 0))
    chars = max(8, text_w // 7)
    for r, prompt in enumerate(prompts):
        draw.multiline_text((x, label_h + r * side + 4), textwrap.fill(prompt, chars), fill=(0, 0, 0))
    return canvas


def write_grids(plan: list[WorkItem], request: EvalRequest) -> list[Path]:
    folder = request.out / "grids"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for subject in dict.fromkeys(item.subject for item in plan):
        items = [item for item in plan if item.subject == subject]
        references = [load_image(p) for p in reference_photos(subject, request.config.max_refs)]
        generations = {
            method: [
                [
                    Image.open(p)
                    for p in item_paths(request.out, method, item, request.config.images_per_prompt)
                ]
                for item in items
            ]
            for method in request.methods
        }
        path = folder / f"{subject.name}.jpg"
        subject_grid(references, generations, [item.prompt for item in items]).save(path, quality=90)
        written.append(path)
    return written


def write_report(report: dict, plan: list[WorkItem], request: EvalRequest) -> list[Path]:
    """`metrics.json` (with the published rows for reference), `report.md` and `grids/<subject>.jpg`."""
    out = request.out
    full = report | {"published": [row.__dict__ for row in PUBLISHED_ROWS]}
    write_text_atomically(out / "metrics.json", json.dumps(full, indent=2))
    write_text_atomically(out / "report.md", markdown_report(report))
    files = [out / "metrics.json", out / "report.md"]
    if request.grids:
        files += write_grids(plan, request)
    return files
