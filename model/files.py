"""Atomic file writes: a file appears under its final name whole, or not at all.

Synthesis, evaluation and training checkpoints decide what is finished by what exists on disk, so a
process killed in the middle of a write must never leave a partial file under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PIL import Image


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Let `write` fill a temporary file beside `path` (per process), then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_image_atomically(image: Image.Image, path: str | Path, format: str = "PNG") -> None:
    write_atomically(path, lambda tmp: image.save(tmp, format=format))
