"""`bootpig config`: the reference generated from Settings, the README/.env.example it keeps current,
and the pins the images install."""

from __future__ import annotations

import json
import re
from enum import Enum

import tomllib
from deploy_files import (
    COMPOSE_FILE,
    COMPOSE_ONLY,
    ENV_EXAMPLE,
    REPO,
    THIRD_PARTY_ENV,
    compose_variables,
    load_compose,
)
from deploy_files import env_example_entries as read_env_example
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import AliasChoices, Field

from bootpig.cli import main
from bootpig.commands.config import (
    ENV_END,
    ENV_START,
    README_END,
    README_START,
    all_env_names,
    env_names,
    generated_region,
    render_env_example,
    render_markdown,
)
from bootpig.settings import Settings


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["config", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_rows(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


# --- the generated reference -------------------------------------------------------------------------


def test_markdown_has_one_row_per_setting_with_env_and_default(capsys):
    code, out, _ = run_cli(capsys, "--markdown")
    assert code == 0 and out == render_markdown()
    rows = {row[0].strip("`"): row for row in table_rows(out)}
    assert list(rows) == list(Settings.model_fields)
    assert rows["redis_url"][1] == "`REDIS_URL` or `BOOTPIG_REDIS_URL`"
    assert rows["port"][1:3] == ["`BOOTPIG_PORT`", f"`{Settings.model_fields['port'].default}`"]
    assert rows["model"][2] == "*(unset)*"
    assert "one of `tracer`, `none`" in rows["segment"][3]


def test_readme_table_equals_bootpig_config_markdown(capsys):
    _, out, _ = run_cli(capsys, "--markdown")
    region = generated_region((REPO / "README.md").read_text(encoding="utf-8"), README_START, README_END)
    assert region is not None, "README.md lost its config-table markers"
    assert region == out, "README table is stale: run .venv/bin/bootpig config --write-readme README.md"


def test_env_example_settings_part_is_current():
    region = generated_region(ENV_EXAMPLE.read_text(encoding="utf-8"), ENV_START, ENV_END)
    assert region == render_env_example(), (
        "stale: run .venv/bin/bootpig config --write-env-example .env.example"
    )


def test_env_example_keys_all_exist():
    settings_env = all_env_names()
    compose_used = compose_variables(COMPOSE_FILE.read_text(encoding="utf-8"))
    profiles = {p for service in load_compose()["services"].values() for p in service.get("profiles", [])}
    for key, value in read_env_example().items():
        if key == "COMPOSE_PROFILES":  # read by the compose CLI itself: must name profiles that exist
            assert set(value.split(",")) <= profiles, f"COMPOSE_PROFILES={value}: unknown profile"
        elif COMPOSE_ONLY.match(key):
            assert key in compose_used, f".env.example documents {key}, which docker-compose.yml never reads"
        else:
            assert key in settings_env or key in THIRD_PARTY_ENV, f".env.example: unknown variable {key}"
    primary = {env_names(name, field)[0] for name, field in Settings.model_fields.items()}
    assert primary <= set(read_env_example()), "every setting is documented in .env.example"


def test_env_example_defaults_load_back_as_the_defaults(monkeypatch):
    """Uncommenting a generated line must not change anything: the written defaults are valid input."""
    for name in all_env_names():
        monkeypatch.delenv(name, raising=False)
    entries = read_env_example(render_env_example())
    for key, value in entries.items():
        if value:  # an empty value is not "unset"; .env.example says to leave such lines commented
            monkeypatch.setenv(key, value)
    loaded = Settings(_env_file=None)
    for name, field in Settings.model_fields.items():
        assert getattr(loaded, name) == field.get_default(call_default_factory=True), name


def test_generator_reads_new_fields_dynamically():
    """A field added to Settings later shows up without touching the generator."""

    class Colour(str, Enum):
        red = "red"
        blue = "blue"

    class Grown(Settings):
        gpu_memory_fraction: float = Field(0.9, gt=0, le=1, description="Share of GPU memory | to use.")
        colour: Colour = Field(Colour.blue, description="A choice.")
        legacy_url: str = Field(
            "x", validation_alias=AliasChoices("LEGACY_URL", "BOOTPIG_LEGACY_URL"), description="Aliased."
        )

    rows = {row[0].strip("`"): row for row in table_rows(render_markdown(Grown))}
    assert rows["gpu_memory_fraction"] == [
        "`gpu_memory_fraction`",
        "`BOOTPIG_GPU_MEMORY_FRACTION`",
        "`0.9`",
        "Share of GPU memory \\| to use. (> 0; <= 1)",
    ]
    assert rows["colour"][2:] == ["`blue`", "A choice. (one of `red`, `blue`)"]
    assert rows["legacy_url"][1] == "`LEGACY_URL` or `BOOTPIG_LEGACY_URL`"
    assert "# BOOTPIG_GPU_MEMORY_FRACTION=0.9" in render_env_example(Grown).splitlines()
    assert {"BOOTPIG_GPU_MEMORY_FRACTION", "LEGACY_URL", "BOOTPIG_LEGACY_URL"} <= all_env_names(Grown)


# --- writing and checking files ------------------------------------------------------------------------


def test_write_readme_replaces_only_the_marked_region(tmp_path, capsys):
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro text\n\n", "\n## After\n\nmore text\n"
    readme.write_text(f"{before}{README_START}\nold table\n{README_END}{after}", encoding="utf-8")

    code, _, _ = run_cli(capsys, "--write-readme", str(readme), "--check")
    assert code == 1 and "old table" in readme.read_text(), "--check must report and change nothing"

    assert run_cli(capsys, "--write-readme", str(readme))[0] == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(before + README_START + "\n") and text.endswith(README_END + after)
    assert generated_region(text, README_START, README_END) == render_markdown()
    assert run_cli(capsys, "--write-readme", str(readme), "--check")[0] == 0


def test_write_refuses_a_file_without_markers(tmp_path, capsys):
    env_file = tmp_path / ".env.example"
    env_file.write_text("COMPOSE_PROFILES=gpu\n", encoding="utf-8")
    assert main(["config", "--write-env-example", str(env_file)]) == 2
    assert "markers" in capsys.readouterr().err
    assert env_file.read_text() == "COMPOSE_PROFILES=gpu\n"


# --- the effective settings ---------------------------------------------------------------------------


def test_effective_settings_show_sources_and_hide_secrets(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    monkeypatch.setenv("BOOTPIG_API_KEYS", "very-secret-1,very-secret-2")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@redis:6379/0")
    monkeypatch.setenv("BOOTPIG_PORT", "9123")
    code, out, _ = run_cli(capsys)
    assert code == 0
    assert "very-secret" not in out and "hunter2" not in out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "9123" in lines["BOOTPIG_PORT"] and "[set]" in lines["BOOTPIG_PORT"]
    assert "<2 hidden>" in lines["BOOTPIG_API_KEYS"]
    assert "redis://:***@redis:6379/0" in lines["REDIS_URL"]
    assert "[default]" in lines["BOOTPIG_QUEUE_NAME"]

    code, out, _ = run_cli(capsys, "--json")
    rows = {row["setting"]: row for row in json.loads(out)}
    assert rows["port"] == {"setting": "port", "env": "BOOTPIG_PORT", "value": "9123", "source": "set"}
    assert "hunter2" not in out


# --- image pins ---------------------------------------------------------------------------------------


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in (REPO / "docker" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_dependency_within_pyproject_ranges():
    pins = pinned_versions()
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in dependencies:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned: run docker/pin_requirements.py"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} ∉ {line}"


def test_split_requirements_sends_torch_to_its_index(tmp_path):
    import subprocess
    import sys

    torch_txt, rest_txt = tmp_path / "torch.txt", tmp_path / "requirements.txt"
    script = REPO / "docker" / "split_requirements.py"
    subprocess.run(
        [sys.executable, str(script), str(REPO / "pyproject.toml"), str(torch_txt), str(rest_txt)], check=True
    )
    torch_lines = torch_txt.read_text().split()
    rest_lines = rest_txt.read_text().splitlines()
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {canonicalize_name(Requirement(line).name) for line in torch_lines} == {"torch", "torchvision"}
    assert sorted(torch_lines + rest_lines) == sorted(dependencies)


def test_operations_guide_names_the_regeneration_commands():
    text = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert "bootpig config --write-readme README.md --write-env-example .env.example" in text
    assert "docker/pin_requirements.py" in text
