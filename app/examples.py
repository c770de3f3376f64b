"""Example subjects of the served model folder (`examples/<subject>/*.png`), offered by the web page.

The listing is read once when the API starts and is the allow-list of what `GET /examples/...` serves:
a request names a subject and a file, both looked up in that listing, so no path built from user input
ever reaches the filesystem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from model.toyworld.world import SCENES

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_SUBJECTS = 8
IMAGES_PER_SUBJECT = 4  # enough references for the toy model; a job takes up to 8


@dataclass(frozen=True)
class ExampleSubject:
    name: str
    prompt: str
    files: dict[str, Path]  # file name -> the PNG

    def public(self) -> dict:
        urls = [f"/examples/{self.name}/{file}" for file in self.files]
        return {"subject": self.name, "prompt": self.prompt, "images": urls}


def suggested_prompt(subject: str, index: int) -> str:
    """A caption of the toy world's grammar; the subject's class is the last word of its folder name."""
    noun = re.split(r"[-_]", subject)[-1].lower()
    article = "an" if noun[0] in "aeiou" else "a"
    scene = list(SCENES.values())[index % len(SCENES)]
    return f"a photo of {article} {noun}, on {scene}"


def _pngs(folder: Path) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".png" and NAME.fullmatch(p.stem))
    files = [p for p in files if p.is_file() and not p.is_symlink()]
    return {p.name: p for p in files[:IMAGES_PER_SUBJECT]}


def scan_examples(model_folder: Path | None) -> dict[str, ExampleSubject]:
    """The example subjects in `model_folder/examples` (none without the folder), by name."""
    root = model_folder / "examples" if model_folder else None
    if root is None or not root.is_dir():
        return {}
    folders = sorted(
        p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and NAME.fullmatch(p.name)
    )
    subjects = {}
    for folder in folders:
        files = _pngs(folder)
        if files and len(subjects) < MAX_SUBJECTS:
            subjects[folder.name] = ExampleSubject(
                folder.name, suggested_prompt(folder.name, len(subjects)), files
            )
    return subjects
