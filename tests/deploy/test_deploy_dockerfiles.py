"""The Dockerfiles and .dockerignore, checked statically: entrypoints, users, pins, layer order."""

from __future__ import annotations

import re

import pytest
import tomllib
from deploy_files import (
    DOCKERFILES,
    REPO,
    THIRD_PARTY_ENV,
    arg_defaults,
    base_images,
    copy_sources,
    dockerignore_excludes,
    env_pairs,
    last,
    parse_dockerfile,
)

from bootpig.cli import build_parser
from bootpig.commands.config import all_env_names

EXPECTED_COMMAND = {"api": "serve", "worker": "worker"}


def package_dirs() -> list[str]:
    """Top-level packages that pyproject.toml installs (`include = ["app*", ...]`)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in patterns})


@pytest.fixture(scope="module", params=sorted(DOCKERFILES))
def image(request):
    return request.param, parse_dockerfile(DOCKERFILES[request.param])


def test_entrypoint_runs_a_real_bootpig_subcommand(image):
    name, instructions = image
    entrypoint = last(instructions, "ENTRYPOINT").exec_form()
    cmd = last(instructions, "CMD").exec_form()
    assert entrypoint == ["bootpig"], "exec form, so signals reach bootpig"
    assert cmd is not None, "CMD must be in exec form"
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)
    assert cmd[0] in subcommands
    assert build_parser().parse_args(cmd).command == EXPECTED_COMMAND[name]


def test_runs_as_an_unprivileged_user_created_in_the_image(image):
    _, instructions = image
    user = last(instructions, "USER")
    assert user is not None, "no USER: the container would run as root"
    uid_spec = user.arguments.split(":")[0]
    uid = re.sub(r"\$\{?(\w+)\}?", lambda m: arg_defaults(instructions).get(m.group(1), "?"), uid_spec)
    assert uid.isdigit() and int(uid) >= 1000, f"USER {user.arguments}: use a numeric, non-system uid"
    assert user.line > max(i.line for i in instructions if i.keyword == "RUN"), "USER after the last RUN"
    creates = " ".join(i.arguments for i in instructions if i.keyword == "RUN")
    assert re.search(r"useradd .*--uid \"?" + re.escape(uid_spec), creates), "the uid must exist in the image"


def test_base_images_are_pinned(image):
    _, instructions = image
    for base in base_images(instructions):
        repository, _, tag = base.partition(":")
        assert tag and tag != "latest" and "$" not in base, f"unpinned base image {base}"
        assert re.match(r"\d+\.\d+\.\d+-", tag), f"{base}: pin a full version, not a moving tag"


def test_worker_pairs_a_cuda_runtime_base_with_the_matching_cuda_torch():
    instructions = parse_dockerfile(DOCKERFILES["worker"])
    (base,) = base_images(instructions)
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-runtime-ubuntu[\d.]+", base)
    assert match, f"worker base must be a CUDA runtime image, not {base}"
    index = arg_defaults(instructions)["TORCH_INDEX_URL"]
    assert index.endswith(f"/whl/cu{match.group(1)}{match.group(2)}"), f"{index} does not match {base}"
    api_index = arg_defaults(parse_dockerfile(DOCKERFILES["api"]))["TORCH_INDEX_URL"]
    assert api_index.endswith("/whl/cpu")


def test_dependencies_are_installed_before_the_source_is_copied(image):
    _, instructions = image
    packages = set(package_dirs())
    source_copies = [i for i in instructions if i.keyword == "COPY" and packages & set(copy_sources(i))]
    assert {src for i in source_copies for src in copy_sources(i)} >= packages, "every package is copied"
    first_source = min(i.line for i in source_copies)
    installs = [i for i in instructions if i.keyword == "RUN" and "pip install" in i.arguments]
    dependency_installs = [i for i in installs if "requirements.txt" in i.arguments]
    assert dependency_installs and all(i.line < first_source for i in dependency_installs)
    source_install = [i for i in installs if i.line > first_source]
    assert source_install and all("--no-deps" in i.arguments for i in source_install)


def test_pip_and_apt_leave_no_caches(image):
    _, instructions = image
    for instruction in instructions:
        if instruction.keyword != "RUN":
            continue
        for command in re.split(r"&&|;", instruction.arguments):
            if "pip install" in command:
                assert "--no-cache-dir" in command, command
            if "apt-get install" in command:
                assert "--no-install-recommends" in command and "-y" in command, command
        if "apt-get update" in instruction.arguments:
            assert "rm -rf /var/lib/apt/lists/*" in instruction.arguments
    env = env_pairs(instructions)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PIP_NO_CACHE_DIR"] == "1"


def test_image_env_names_settings_that_exist(image):
    _, instructions = image
    settings_env = all_env_names()
    unknown = set(env_pairs(instructions)) - settings_env - THIRD_PARTY_ENV
    assert not unknown, f"ENV that no setting reads: {sorted(unknown)}"
    env = env_pairs(instructions)
    assert env["HF_HOME"].startswith("/models/") and env["BOOTPIG_TRACER_WEIGHTS"].startswith("/models/")


def test_api_image_probes_healthz():
    instructions = parse_dockerfile(DOCKERFILES["api"])
    healthcheck = last(instructions, "HEALTHCHECK")
    assert healthcheck is not None and "/healthz" in healthcheck.arguments
    assert "EXPOSE" in {i.keyword for i in instructions}


def test_dockerignore_keeps_secrets_and_bulk_out_and_sources_in():
    for path in [".env", ".venv/bin/python", ".git/config", "tests/conftest.py", "data/x.png", "runs/a/b"]:
        assert dockerignore_excludes(path), f"{path} would be sent to the Docker daemon"
    for path in ["bootpig/__pycache__/cli.cpython-312.pyc", "app/__pycache__/main.cpython-312.pyc"]:
        assert dockerignore_excludes(path)
    for name, dockerfile in DOCKERFILES.items():
        for instruction in parse_dockerfile(dockerfile):
            if instruction.keyword == "COPY" and "--from" not in instruction.arguments:
                for source in copy_sources(instruction):
                    assert (REPO / source).exists(), f"{name}: COPY {source} does not exist"
                    assert not dockerignore_excludes(source), f"{name}: {source} is excluded by .dockerignore"
    for package in package_dirs():
        for file in (REPO / package).rglob("*.py"):
            if "__pycache__" not in file.parts:
                relative = file.relative_to(REPO).as_posix()
                assert not dockerignore_excludes(relative), f"{relative} missing from the build context"


def test_dockerignore_matcher_follows_docker_rules():
    """The matcher the test above relies on: last rule wins, folders cover their content."""
    rules = ["*", "!keep/", "keep/secret.txt", "**/*.pyc"]
    assert dockerignore_excludes("other.txt", rules)
    assert not dockerignore_excludes("keep/a/b.py", rules)
    assert dockerignore_excludes("keep/secret.txt", rules)
    assert dockerignore_excludes("keep/a/b.pyc", rules)
