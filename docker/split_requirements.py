"""Split pyproject.toml's runtime dependencies into the PyTorch part and the rest (used at image build).

Why: the images install the dependencies before copying the source (a code change then rebuilds one
small layer, not the multi-GB one), and torch/torchvision must come from the PyTorch index that the
`TORCH_INDEX_URL` build argument names (CPU or a CUDA build), everything else from PyPI. Reading the
list from pyproject.toml keeps one source of truth for versions. Standard library only: it runs before
anything is installed.

    python split_requirements.py pyproject.toml torch.txt requirements.txt
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

TORCH_PACKAGES = {"torch", "torchvision"}
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split(pyproject: Path) -> tuple[list[str], list[str]]:
    """(torch requirements, other requirements), each as written in pyproject.toml."""
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    torch, rest = [], []
    for requirement in dependencies:
        match = NAME.match(requirement)
        if match is None:
            raise ValueError(f"cannot read the package name of {requirement!r}")
        (torch if canonical(match.group(1)) in TORCH_PACKAGES else rest).append(requirement)
    return torch, rest


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    torch, rest = split(Path(argv[0]))
    if not torch:
        raise SystemExit(f"{argv[0]}: no torch requirement found")
    Path(argv[1]).write_text("\n".join(torch) + "\n", encoding="utf-8")
    Path(argv[2]).write_text("\n".join(rest) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
