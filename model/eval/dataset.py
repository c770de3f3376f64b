"""The DreamBooth benchmark as it lies on disk: subject folders of photos and `prompts_and_classes.txt`.

The dataset's own text file is the source of truth for each subject's class and for the 25 prompts
(one list for objects, one for live subjects). It writes the prompts as Python `.format` calls with a
unique token and a class token; the zero-shot protocol has no unique token, so the class noun alone
stands in for "{unique_token} {class}" ("a backpack in the jungle").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROMPTS_FILE = "prompts_and_classes.txt"
# The DreamBooth dataset calls its cats and dogs "live subjects"; they get the accessory/outfit prompts.
LIVE_CLASSES = frozenset({"cat", "dog"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})

_PROMPT_LINE = re.compile(
    r"""^\s*(['"])(?P<template>.*)\1\.format\(\s*unique_token\s*,\s*class_token\s*\)\s*,?\s*$"""
)


@dataclass(frozen=True)
class PromptFile:
    """What `prompts_and_classes.txt` says: subject -> class, and the two prompt templates lists."""

    classes: dict[str, str]
    object_prompts: tuple[str, ...]
    live_prompts: tuple[str, ...]


@dataclass(frozen=True)
class Subject:
    """One subject present on disk: its class and its real photos (sorted by name)."""

    name: str
    class_name: str
    images: tuple[Path, ...]

    @property
    def is_live(self) -> bool:
        return self.class_name in LIVE_CLASSES


def parse_prompts_file(path: str | Path) -> PromptFile:
    """Read the dataset's classes table and its object and live-subject prompt templates."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a DreamBooth-layout folder holds {PROMPTS_FILE}")
    classes: dict[str, str] = {}
    lists: dict[str, list[str]] = {"object": [], "live": []}
    section = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        lowered = line.lower()
        if lowered == "classes":
            section = "classes"
        elif lowered == "object prompts":
            section = "object"
        elif lowered == "live subject prompts":
            section = "live"
        elif section == "classes" and "," in line and lowered != "subject_name,class":
            name, class_name = (part.strip() for part in line.split(",", 1))
            classes[name] = class_name
        elif section in lists and (match := _PROMPT_LINE.match(line)):
            lists[section].append(match["template"])
    if not classes or not lists["object"] or not lists["live"]:
        raise ValueError(
            f"{path} is not a DreamBooth prompts file: found {len(classes)} classes, "
            f"{len(lists['object'])} object prompts and {len(lists['live'])} live-subject prompts"
        )
    for template in lists["object"] + lists["live"]:
        if "{1}" not in template:
            raise ValueError(f"{path}: prompt {template!r} has no class token {{1}}")
    return PromptFile(classes, tuple(lists["object"]), tuple(lists["live"]))


def format_prompt(template: str, class_name: str, unique_token: str = "") -> str:
    """Fill a template; without a unique token its slot disappears along with the extra space."""
    return " ".join(template.format(unique_token, class_name).split())


def subject_prompts(
    subject: Subject, prompt_file: PromptFile, limit: int | None = None, unique_token: str = ""
) -> list[str]:
    """The subject's prompts (live-subject list for cats and dogs), the first `limit` of them."""
    templates = prompt_file.live_prompts if subject.is_live else prompt_file.object_prompts
    if limit is not None:
        if limit < 1:
            raise ValueError("the number of prompts must be at least 1")
        templates = templates[:limit]
    return [format_prompt(t, subject.class_name, unique_token) for t in templates]


def subject_images(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))


def load_subjects(root: str | Path, names: Iterable[str] | None = None) -> tuple[list[Subject], PromptFile]:
    """Subjects of the prompts file that have a photo folder under `root` (all, or the named ones)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} not found")
    prompt_file = parse_prompts_file(root / PROMPTS_FILE)
    present = {
        name: images
        for name in prompt_file.classes
        if (root / name).is_dir() and (images := subject_images(root / name))
    }
    if names is not None:
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in present]
        if unknown:
            raise ValueError(
                f"subjects not in {root}: {', '.join(unknown)} (available: {', '.join(sorted(present))})"
            )
    else:
        wanted = sorted(present)
    if not wanted:
        raise ValueError(f"{root} holds no subject folder named in {PROMPTS_FILE}")
    subjects = [Subject(n, prompt_file.classes[n], present[n]) for n in wanted]
    return subjects, prompt_file
