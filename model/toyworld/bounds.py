"""What the metrics allow: the renderer as a perfect generator, scored by the production scorer.

The "reference views" row compares views on white with each other, so it shares the white background
that no generation in a prompted scene can have. Two rows bound what a generator *can* score instead:

- `renderer: the subject` — the held-out subject itself rendered in the prompt's scene (a perfect
  personalizer: right shape, right appearance, right scene, another pose);
- `renderer: another subject` — a fresh appearance of the same shape in that scene (a perfect text-only
  model: everything the prompt names, nothing the references add).

Their images are written in `bootpig eval`'s layout and scored by `model.eval.run.score`, the function
every evaluated row goes through, so the bounds and the rows are measured by the same code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model.toyworld.world import Pose, Subject, render

SUBJECT_ROW, OTHER_ROW = "renderer: the subject", "renderer: another subject"
BOUNDS_STREAM = 20_000  # the bound rows' poses and appearances come from their own seed stream


def render_row(
    out: Path,
    subjects: dict[str, Subject],
    scenes: list[str],
    images_per_prompt: int,
    size: int,
    same_subject: bool,
    seed: tuple[int, ...],
) -> None:
    """Render every (subject, prompt, image) of one row where `bootpig eval` would have saved it."""
    from model.eval.config import BOOTPIG
    from model.eval.plan import image_path

    rng = np.random.default_rng(seed)
    for name, subject in subjects.items():
        for p, scene in enumerate(scenes):
            for i in range(images_per_prompt):
                shown = subject if same_subject else Subject.sample(rng, subject.shape)
                path = image_path(out, BOOTPIG, name, p, i)
                path.parent.mkdir(parents=True, exist_ok=True)
                render(shown, scene, Pose.sample(rng, size), size, rng).image.save(path)


def score_bounds(
    row_folder: Callable[[str], Path],
    dataset: Path,
    subjects: dict[str, Subject],
    scenes: list[str],
    images_per_prompt: int,
    size: int,
    encoders: tuple[Path, Path],
    seed: int,
    progress: bool = True,
) -> dict[str, dict]:
    """Render and score both bound rows; each row's `metrics.json` has the layout of `bootpig eval`'s."""
    from model.eval.config import BOOTPIG, EvalConfig
    from model.eval.dataset import load_subjects
    from model.eval.metrics import Encoders
    from model.eval.plan import EvalRequest, build_plan
    from model.eval.run import score

    loaded, prompt_file = load_subjects(dataset)
    plan = build_plan(loaded, prompt_file, len(scenes))
    models = Encoders.load(*map(str, encoders), device="cpu", local_files_only=True)
    rows = {}
    for index, (row, same) in enumerate(((SUBJECT_ROW, True), (OTHER_ROW, False))):
        out = row_folder(row)
        render_row(out, subjects, scenes, images_per_prompt, size, same, (seed, BOUNDS_STREAM, index))
        config = EvalConfig(images_per_prompt=images_per_prompt)
        request = EvalRequest(config=config, dataset=dataset, out=out, progress=progress, grids=False)
        results = score(request, plan, models)
        (out / "metrics.json").write_text(json.dumps({"results": results}, indent=2))
        rows[row] = results[BOOTPIG]["overall"]
    return rows
