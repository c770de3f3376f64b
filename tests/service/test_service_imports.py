"""The API stays light: building the app imports neither torch nor the worker (docs/architecture.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
from app.main import create_app
from bootpig.settings import Settings
create_app(Settings(redis_url="redis://127.0.0.1:1/0"))  # builds the app; connects to nothing yet
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "worker"))
print(" ".join(heavy))
"""


def test_api_imports_neither_torch_nor_the_worker():
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", result.stdout
