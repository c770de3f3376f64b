"""What the metrics allow: the renderer as a perfect generator, scored by the production scorer.

The "reference views" row compares views on white with each other, so it shares the white background
that no generation in a prompted scene can have. Two rows bound what a generator *can* score instead:

- `renderer: the subject` — the held-out subject itself rendered in the prompt's scene (a perfect
  personalizer: right shape, right appearance, right scene, another pose);
- `renderer: another subject` — a fresh appearance of the same shape in that scene (a perfect text-only
  model: everything the prompt names, nothing the references add);
- `renderer: the subject, through the VAE` — the first row's images encoded and decoded by the base
  model's VAE: what any latent model of this world can show at best, since it generates through it.

Their images are written in `bootpig eval`'s layout and scored by `model.eval.run.score`, the function
every evaluated row goes through, so the bounds and the rows are measured by the same code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from model.toyworld.world import Pose, Subject, render

SUBJECT_ROW, OTHER_ROW = "renderer: the subject", "renderer: another subject"
VAE_ROW = "renderer: the subject, through the VAE"
BOUND_ROWS = (SUBJECT_ROW, OTHER_ROW, VAE_ROW)
BOUNDS_STREAM = 20_000  # the bound rows' poses and appearances come from their own seed stream


def render_row(
    out: Path,
    subjects: dict[str, Subject],
    scenes: list[str],
    images_per_prompt: int,
    size: int,
    same_subject: bool,
    seed: tuple[int, ...],
    through: Callable[[Image.Image], Image.Image] | None = None,
) -> None:
    """Render every (subject, prompt, image) of one row where `bootpig eval` would have saved it,
    passed `through` an image-to-image function when one is given."""
    from model.eval.config import BOOTPIG
    from model.eval.plan import image_path

    rng = np.random.default_rng(seed)
    for name, subject in subjects.items():
        for p, scene in enumerate(scenes):
            for i in range(images_per_prompt):
                shown = subject if same_subject else Subject.sample(rng, subject.shape)
                path = image_path(out, BOOTPIG, name, p, i)
                path.parent.mkdir(parents=True, exist_ok=True)
                image = render(shown, scene, Pose.sample(rng, size), size, rng).image
                (through(image) if through else image).save(path)


def vae_roundtrip(vae_folder: Path) -> Callable[[Image.Image], Image.Image]:
    """Image -> the VAE's reconstruction of it (the latent distribution's mode, decoded)."""
    import torch
    from diffusers import AutoencoderKL

    from model.toyworld.world import to_array

    vae = AutoencoderKL.from_pretrained(vae_folder, local_files_only=True).eval()

    @torch.no_grad()
    def roundtrip(image: Image.Image) -> Image.Image:
        x = torch.from_numpy(to_array([image]))  # the (1, 3, H, W) in [-1, 1] the toy VAE trained on
        decoded = vae.decode(vae.encode(x).latent_dist.mode()).sample[0].clamp(-1, 1)
        return Image.fromarray(((decoded.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8))

    return roundtrip


def score_bounds(
    row_folder: Callable[[str], Path],
    dataset: Path,
    subjects: dict[str, Subject],
    scenes: list[str],
    images_per_prompt: int,
    size: int,
    encoders: tuple[Path, Path],
    vae_folder: Path,
    seed: int,
    progress: bool = True,
) -> dict[str, dict]:
    """Render and score the bound rows; each row's `metrics.json` has the layout of `bootpig eval`'s."""
    from model.eval.config import BOOTPIG, EvalConfig
    from model.eval.dataset import load_subjects
    from model.eval.metrics import Encoders
    from model.eval.plan import EvalRequest, build_plan
    from model.eval.run import score

    loaded, prompt_file = load_subjects(dataset)
    plan = build_plan(loaded, prompt_file, len(scenes))
    models = Encoders.load(*map(str, encoders), device="cpu", local_files_only=True)
    rows = {}
    rendered = ((SUBJECT_ROW, True, 0, None), (OTHER_ROW, False, 1, None))
    rendered += ((VAE_ROW, True, 0, vae_roundtrip(vae_folder)),)  # the subject row's images, reconstructed
    for row, same, stream, through in rendered:
        out = row_folder(row)
        seeds = (seed, BOUNDS_STREAM, stream)
        render_row(out, subjects, scenes, images_per_prompt, size, same, seeds, through)
        config = EvalConfig(images_per_prompt=images_per_prompt)
        request = EvalRequest(config=config, dataset=dataset, out=out, progress=progress, grids=False)
        results = score(request, plan, models)
        (out / "metrics.json").write_text(json.dumps({"results": results}, indent=2))
        rows[row] = results[BOOTPIG]["overall"]
    return rows
