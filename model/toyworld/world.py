"""The toy world: one patterned object of a named shape in a named scene, rendered procedurally.

A subject is a shape plus an *appearance* that no caption names (a random palette laid out in a random
pattern), so text alone cannot reproduce a subject and only a reference image can. Everything is a
pure function of a seed: images, ground-truth masks, several views of one subject, and captions in the
offline caption grammar ("A photo of a [shape], [placement] [scene]").
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image

from model.synth.captions import PLACEMENTS

SHAPES = ("ball", "cube", "ring", "star", "triangle", "cross", "diamond", "mug")
# scene name -> the phrase captions use for it
SCENES = {
    "grass": "a grassy meadow",
    "snow": "the deep snow",
    "night": "a dark night",
    "carpet": "a red carpet",
    "beach": "a sandy beach",
    "desert": "an orange desert",
    "wood": "a wooden floor",
    "sea": "the blue sea",
}
SCENE_NAMES = tuple(SCENES)
PATTERNS = ("stripes", "dots", "checker", "gradient")
SUPERSAMPLE = 2  # anti-aliasing: render at 2x and average down


@dataclass(frozen=True)
class Appearance:
    """What words do not name: 2-3 colours (RGB in [0, 1]) laid out in a pattern of the object's frame."""

    pattern: str
    colors: tuple[tuple[float, float, float], ...]
    angle: float  # radians, orientation of stripes / checker / gradient
    period: float  # in object radii

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Appearance:
        hue = rng.random()
        count = int(rng.integers(2, 4))
        colors = []
        for i in range(count):  # hues spread around the wheel so the colours of one subject differ
            h = (hue + i / count + rng.uniform(-0.08, 0.08)) % 1.0
            colors.append(colorsys.hsv_to_rgb(h, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)))
        return cls(
            pattern=str(rng.choice(PATTERNS)),
            colors=tuple(colors),
            angle=float(rng.uniform(0, np.pi)),
            period=float(rng.uniform(0.35, 0.7)),
        )


@dataclass(frozen=True)
class Subject:
    shape: str
    appearance: Appearance

    @classmethod
    def sample(cls, rng: np.random.Generator, shape: str | None = None) -> Subject:
        return cls(shape or str(rng.choice(SHAPES)), Appearance.sample(rng))


@dataclass(frozen=True)
class Pose:
    """Where and how large the object is: centre and radius in pixels, flip, rotation (radians)."""

    cx: float
    cy: float
    radius: float
    flip: bool = False
    rotation: float = 0.0

    @classmethod
    def sample(cls, rng: np.random.Generator, size: int, min_radius=0.2, max_radius=0.34) -> Pose:
        radius = rng.uniform(min_radius, max_radius) * size
        margin = radius + 0.07 * size  # keeps the object clear of the frame (synth rejects cut-off masks)
        return cls(
            cx=float(rng.uniform(margin, size - margin)),
            cy=float(rng.uniform(margin, size - margin)),
            radius=float(radius),
            flip=bool(rng.random() < 0.5),
            rotation=float(rng.uniform(-0.3, 0.3)),
        )


# ------------------------------------------------------------------------------------- geometry
def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a shape in object coordinates (the object fills about the unit disc, v down)."""
    r = np.hypot(u, v)
    if shape == "ball":
        return r <= 1.0
    if shape == "cube":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if shape == "star":
        theta = np.arctan2(u, -v)
        phase = np.abs(((theta / (2 * np.pi / 5)) % 1.0) - 0.5) * 2  # 1 at the tips, 0 between
        return r <= 0.42 + 0.58 * phase
    if shape == "triangle":
        return (v <= 0.75) & (v >= -0.95) & (np.abs(u) <= (v + 0.95) * 0.6)
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95))
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "mug":
        body = (np.abs(u + 0.2) <= 0.55) & (np.abs(v) <= 0.75)
        rh = np.hypot(u - 0.4, v)
        handle = (u >= 0.3) & (rh <= 0.5) & (rh >= 0.27)
        return body | handle
    raise ValueError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")


def _pattern(appearance: Appearance, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(H, W, 3) colours of the appearance at object coordinates (u, v)."""
    colors = np.asarray(appearance.colors, dtype=np.float32)
    a = appearance.angle
    along = u * np.cos(a) + v * np.sin(a)
    across = -u * np.sin(a) + v * np.cos(a)
    p = appearance.period
    if appearance.pattern == "stripes":
        index = np.floor(along / p).astype(int) % len(colors)
        return colors[index]
    if appearance.pattern == "checker":
        index = (np.floor(along / p).astype(int) + np.floor(across / p).astype(int)) % 2
        return colors[index]
    if appearance.pattern == "dots":
        du, dv = (along / p) % 1.0 - 0.5, (across / p) % 1.0 - 0.5
        dot = np.hypot(du, dv) <= 0.3
        return np.where(dot[..., None], colors[1], colors[0])
    if appearance.pattern == "gradient":
        t = np.clip((along + 1.0) / 2.0, 0.0, 1.0)[..., None] * (len(colors) - 1)
        low = np.clip(np.floor(t).astype(int), 0, len(colors) - 2)[..., 0]
        frac = t[..., 0] - low
        return colors[low] * (1 - frac[..., None]) + colors[low + 1] * frac[..., None]
    raise ValueError(f"unknown pattern {appearance.pattern!r}")


def _object_layer(subject: Subject, pose: Pose, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Supersampled colour (S, S, 3) and coverage (S, S) of the object alone."""
    side = size * SUPERSAMPLE
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    x = (xs + 0.5) / SUPERSAMPLE - pose.cx
    y = (ys + 0.5) / SUPERSAMPLE - pose.cy
    c, s = np.cos(-pose.rotation), np.sin(-pose.rotation)
    u, v = (x * c - y * s) / pose.radius, (x * s + y * c) / pose.radius
    if pose.flip:
        u = -u
    inside = _shape_mask(subject.shape, u, v)
    return _pattern(subject.appearance, u, v), inside.astype(np.float32)


# ------------------------------------------------------------------------------------- scenes
def scene_background(scene: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) float background of a named scene (plain colour fields and simple textures)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    noise = rng.normal(0, 1, (size, size)).astype(np.float32)

    def field(rgb, jitter=0.015):
        return np.clip(np.asarray(rgb, np.float32) + jitter * noise[..., None], 0, 1) * np.ones(
            (size, size, 1)
        )

    if scene == "grass":
        blades = (np.sin(xs * 90 + 3 * noise) > 0.3)[..., None]
        return np.where(blades, field((0.2, 0.55, 0.15)), field((0.3, 0.7, 0.25)))
    if scene == "snow":
        return field((0.9, 0.93, 0.97), 0.02)
    if scene == "night":
        sky = field((0.05, 0.06, 0.2), 0.01)
        stars = (rng.random((size, size)) < 0.02)[..., None]
        return np.where(stars, 1.0, sky)
    if scene == "carpet":
        return field((0.75, 0.08, 0.1))
    if scene == "beach":
        sky = np.asarray((0.55, 0.8, 0.95), np.float32)
        sand = np.asarray((0.93, 0.84, 0.6), np.float32)
        horizon = (ys < 0.35)[..., None]
        return np.clip(np.where(horizon, sky, sand) + 0.015 * noise[..., None], 0, 1)
    if scene == "desert":
        dunes = 0.08 * np.sin(xs * 12 + ys * 20)[..., None]
        return np.clip(field((0.9, 0.55, 0.2)) + dunes, 0, 1)
    if scene == "wood":
        planks = 0.1 * np.sin(ys * 60 + 2 * np.sin(xs * 7))[..., None]
        return np.clip(field((0.55, 0.35, 0.18)) + planks, 0, 1)
    if scene == "sea":
        waves = 0.1 * np.sin(xs * 30 + np.sin(ys * 25) * 2)[..., None]
        return np.clip(field((0.1, 0.3, 0.65)) + waves, 0, 1)
    if scene == "white":
        return np.ones((size, size, 3), np.float32)
    raise ValueError(f"unknown scene {scene!r} (known: {', '.join(SCENE_NAMES)}, white)")


# ------------------------------------------------------------------------------------- rendering
@dataclass
class Rendered:
    image: Image.Image  # RGB
    mask: np.ndarray  # bool (size, size): the object's pixels


def render(subject: Subject, scene: str, pose: Pose, size: int, rng: np.random.Generator) -> Rendered:
    """The subject at `pose` in `scene` ("white" for a reference on white), with its mask."""
    color, coverage = _object_layer(subject, pose, size)

    def down(a: np.ndarray) -> np.ndarray:
        return a.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, *a.shape[2:]).mean(axis=(1, 3))

    alpha = down(coverage)
    color = down(color * coverage[..., None]) / np.maximum(alpha[..., None], 1e-6)
    background = scene_background(scene, size, rng)
    pixels = background * (1 - alpha[..., None]) + color * alpha[..., None]
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).round().astype(np.uint8))
    return Rendered(image, alpha >= 0.5)


def caption(shape: str, scene: str, placement: str) -> str:
    """The offline caption grammar: "A photo of a [object], [positioning] [scene]"."""
    article = "an" if shape[0] in "aeiou" else "a"
    return f"A photo of {article} {shape}, {placement} {SCENES[scene]}"


def all_captions() -> list[str]:
    """Every caption the grammar can write: the toy text encoders' vocabulary is made of their words."""
    return [caption(sh, sc, pl) for sh in SHAPES for sc in SCENE_NAMES for pl in PLACEMENTS]


@dataclass
class Sample:
    subject: Subject
    scene: str
    caption: str
    rendered: Rendered


def random_sample(rng: np.random.Generator, size: int) -> Sample:
    """A random subject in a random scene with its caption: the base model's training data."""
    subject = Subject.sample(rng)
    scene = str(rng.choice(SCENE_NAMES))
    text = caption(subject.shape, scene, str(rng.choice(PLACEMENTS)))
    return Sample(subject, scene, text, render(subject, scene, Pose.sample(rng, size), size, rng))


def views(subject: Subject, count: int, size: int, rng: np.random.Generator, scene: str = "white"):
    """`count` views of one subject: other size, position, flip and small rotation each."""
    return [render(subject, scene, Pose.sample(rng, size), size, rng) for _ in range(count)]


def to_array(images: list[Image.Image]) -> np.ndarray:
    """(N, 3, H, W) float32 in [-1, 1] for training the toy networks."""
    return np.stack([np.asarray(im, np.float32).transpose(2, 0, 1) / 127.5 - 1.0 for im in images])
