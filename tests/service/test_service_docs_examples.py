"""The shell examples of the README and docs/service.md, run as written against a live stack, and the
docs' webhook verification snippet checked against a real delivery."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

from PIL import Image
from webhook_receiver import WEBHOOK_SECRET, start_receiver

REPO_ROOT = Path(__file__).resolve().parents[2]


def marked_block(path: str, marker: str) -> str:
    """The fenced code between `<!-- marker:start -->` and `<!-- marker:end -->` in a Markdown file."""
    text = (REPO_ROOT / path).read_text()
    section = re.search(rf"<!-- {marker}:start -->(.*?)<!-- {marker}:end -->", text, re.S)
    assert section, f"{path} has no {marker} block"
    code = re.search(r"```\w*\n(.*?)```", section.group(1), re.S)
    assert code, f"{path}: the {marker} block holds no code"
    return code.group(1)


def run_shell(script: str, cwd, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def photos_in(directory, dog_photos) -> None:
    for n, path in enumerate(dog_photos[:2], start=1):
        shutil.copy(path, directory / f"dog{n}.jpg")


def test_readme_curl_example_runs_against_a_live_stack(service, dog_photos, tmp_path):
    photos_in(tmp_path, dog_photos)
    result = run_shell(marked_block("README.md", "curl-example"), tmp_path, URL=service.url)
    assert result.returncode == 0, result.stderr + result.stdout
    events = re.findall(r"^event: (\w+)$", result.stdout, re.M)
    assert events[0] == "status" and events[-1] == "finished" and "progress" in events
    for name in ("reference-0.png", "result-0.png"):
        assert Image.open(io.BytesIO((tmp_path / name).read_bytes())).format == "PNG"
    listed = json.loads(result.stdout.strip().splitlines()[-1])
    assert [subject["name"] for subject in listed["subjects"]].count("my dog") >= 1


def test_docs_webhook_example_and_verification_snippet(service, dog_photos, tmp_path):
    photos_in(tmp_path, dog_photos)
    receiver, server = start_receiver()
    try:
        result = run_shell(
            marked_block("docs/service.md", "webhook-example"), tmp_path, URL=service.url, HOOK=receiver.url
        )
        assert result.returncode == 0, result.stderr + result.stdout
        (request,) = receiver.wait_for(1, timeout=60)
    finally:
        server.shutdown()
    assert json.loads(request.body)["id"] == json.loads(result.stdout)["id"]
    namespace: dict = {}
    exec(marked_block("docs/service.md", "webhook-verify"), namespace)  # the snippet exactly as documented
    signature_ok = namespace["bootpig_signature_ok"]
    assert signature_ok(WEBHOOK_SECRET, request.headers, request.body)
    assert not signature_ok(WEBHOOK_SECRET, request.headers, request.body + b" ")
    assert not signature_ok("another secret", request.headers, request.body)
