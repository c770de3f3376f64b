"""The renderer: deterministic scenes, exact masks, captions in the synth grammar, views of one subject."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.synth.captions import parse_caption
from model.toyworld.oracle import write_oracle_triplets
from model.toyworld.world import (
    SCENE_NAMES,
    SHAPES,
    Pose,
    Subject,
    caption,
    random_sample,
    render,
    views,
)
from model.train.dataset import TripletDataset
from model.triplets import read_manifest


def test_world_has_enough_shapes_and_scenes():
    assert len(SHAPES) >= 8 and len(SCENE_NAMES) >= 8


def test_samples_are_a_function_of_the_seed():
    a = random_sample(np.random.default_rng(7), 64)
    b = random_sample(np.random.default_rng(7), 64)
    c = random_sample(np.random.default_rng(8), 64)
    assert (
        np.array_equal(np.asarray(a.rendered.image), np.asarray(b.rendered.image)) and a.caption == b.caption
    )
    assert not np.array_equal(np.asarray(a.rendered.image), np.asarray(c.rendered.image))


@pytest.mark.parametrize("shape", SHAPES)
def test_mask_marks_the_object_and_only_the_object(shape):
    rng = np.random.default_rng(0)
    subject = Subject.sample(rng, shape)
    pose = Pose(cx=32, cy=32, radius=20)
    on_white = render(subject, "white", pose, 64, rng)
    pixels = np.asarray(on_white.image).astype(int)
    assert 0.05 < on_white.mask.mean() < 0.8
    assert (pixels[~on_white.mask] > 200).all(
        axis=-1
    ).mean() > 0.97  # outside: white (anti-aliased edges aside)
    in_scene = render(subject, "carpet", pose, 64, rng)
    assert np.array_equal(in_scene.mask, on_white.mask)  # the mask does not depend on the background


@pytest.mark.parametrize("scene", SCENE_NAMES)
def test_captions_parse_in_the_offline_grammar_and_name_only_shape_and_scene(scene):
    text = caption("star", scene, "lying on")
    parsed = parse_caption(text)
    assert parsed is not None and parsed.object == "star" and parsed.text == text


def test_objects_stay_clear_of_the_frame():
    rng = np.random.default_rng(1)
    for _ in range(50):
        sample = random_sample(rng, 64)
        ys, xs = np.nonzero(sample.rendered.mask)
        assert min(xs.min(), ys.min()) >= 3 and max(xs.max(), ys.max()) <= 60  # synth's 25 px @ 512 margin


def test_views_of_one_subject_differ_in_pose_but_keep_its_colours():
    rng = np.random.default_rng(2)
    subject, other = Subject.sample(rng, "ball"), Subject.sample(rng, "ball")
    shots = views(subject, 3, 64, rng)
    masks = [shot.mask for shot in shots]
    assert not np.array_equal(masks[0], masks[1])

    def colours(shot):
        return np.asarray(shot.image)[shot.mask].mean(axis=0)

    same = np.abs(colours(shots[0]) - colours(shots[1])).sum()
    different = np.abs(colours(shots[0]) - colours(views(other, 1, 64, rng)[0])).sum()
    assert same < different


def test_bound_rows_show_the_subject_or_another_appearance_of_its_shape_in_the_prompted_scene(tmp_path):
    """The renderer's bound rows (model/toyworld/bounds.py), where `bootpig eval` saves a row's images."""
    from PIL import Image

    from model.eval.plan import image_path
    from model.toyworld.bounds import render_row
    from model.toyworld.world import Appearance

    red, blue = (255, 0, 0), (0, 0, 255)
    subject = Subject("cube", Appearance("stripes", ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)), 0.0, 0.5))
    scenes = ["snow", "night"]

    def row(same_subject: bool) -> list[list[np.ndarray]]:
        out = tmp_path / str(same_subject)
        render_row(out, {"cube1": subject}, scenes, 2, 64, same_subject, (0,))
        return [
            [np.asarray(Image.open(image_path(out, "bootpig", "cube1", p, i))) for i in range(2)]
            for p in range(len(scenes))
        ]

    def shows(image: np.ndarray, colour) -> bool:
        return bool((image == colour).all(axis=-1).any())

    for same_subject in (True, False):
        images = row(same_subject)
        snow, night = (np.mean(images[p]) for p in range(2))
        assert snow > night + 80  # each prompt's scene
        assert all(shows(im, red) and shows(im, blue) for im in images[0] + images[1]) == same_subject
    # `through` (the VAE row's reconstruction) is applied to exactly the images of the same seed.
    out = tmp_path / "through"
    upside_down = Image.Transpose.FLIP_TOP_BOTTOM
    render_row(out, {"cube1": subject}, scenes, 2, 64, True, (0,), lambda im: im.transpose(upside_down))
    flipped = np.asarray(Image.open(image_path(out, "bootpig", "cube1", 1, 0)))
    assert np.array_equal(flipped[::-1], row(True)[1][0])


@pytest.mark.parametrize("other_view", [False, True])
def test_oracle_triplets_give_training_a_reference_from_the_target_or_another_view(tmp_path, other_view):
    out = tmp_path / "triplets"
    assert write_oracle_triplets(out, 4, 64, seed=0, other_view=other_view, progress=False) == 4
    records = list(read_manifest(out))
    assert len(records) == 4 and all(parse_caption(r.caption).object == r.object for r in records)
    assert all((r.reference is not None) is other_view for r in records)
    record = records[0]
    target, mask = np.asarray(Image.open(out / record.target)), np.asarray(Image.open(out / record.mask))
    assert mask.any() and target[mask > 0].std() > 0  # a patterned object with its exact mask
    if other_view:  # the same subject in another pose on white, not the target's pixels
        view, view_mask = (
            np.asarray(Image.open(out / record.reference)),
            np.asarray(Image.open(out / record.reference_mask)),
        )
        assert not np.array_equal(view_mask, mask)
        assert (view[view_mask == 0] == 255).all(axis=1).mean() > 0.95  # on white (edges anti-aliased)
        assert np.abs(view[view_mask > 0].mean(0) - target[mask > 0].mean(0)).max() < 30
    # Resuming writes nothing new, and the training data path reads every triplet.
    assert write_oracle_triplets(out, 4, 64, seed=0, other_view=other_view, progress=False) == 4
    assert len(list(read_manifest(out))) == 4
    dataset = TripletDataset(out, 64)
    assert dataset[0]["reference"].shape == (3, 64, 64)
