"""Readers for the deployment files, for tests that run where Docker is not installed.

Small on purpose: a Dockerfile reader (continuations, exec form, ARG defaults, ENV pairs), Compose's
`${VAR:-default}` interpolation, and `.dockerignore` matching, each only as far as our files need.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERIGNORE = REPO / ".dockerignore"
DOCKERFILES = {"api": REPO / "docker" / "api.Dockerfile", "worker": REPO / "docker" / "worker.Dockerfile"}

# Variables read by docker-compose.yml itself, never by bootpig (documented in .env.example).
COMPOSE_ONLY = re.compile(r"^(DEPLOY_[A-Z0-9_]+|COMPOSE_PROFILES)$")
# Variables of libraries and of the Python/Debian tool chain that the images or .env may set.
THIRD_PARTY_ENV = {
    "HF_HOME",
    "HF_TOKEN",
    "HF_HUB_OFFLINE",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "VIRTUAL_ENV",
    "PATH",
    "DEBIAN_FRONTEND",
}
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
ENV_EXAMPLE_KEY = re.compile(r"^#?\s?([A-Z][A-Z0-9_]*)=(.*)$")


# --- Compose ---------------------------------------------------------------------------------------


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def compose_variables(text: str) -> set[str]:
    """Names Compose interpolates (`$$` is a literal dollar and is skipped)."""
    return {match.group(1) for match in VARIABLE.finditer(text.replace("$$", ""))}


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation on every string of a loaded YAML tree."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name)
        if operator in (":-", "-"):
            unset = current is None or (operator == ":-" and current == "")
            return default if unset else current
        if operator in (":?", "?"):
            if current is None or (operator == ":?" and current == ""):
                raise ValueError(f"required variable {name} is not set: {default}")
        return current or ""

    return VARIABLE.sub(substitute, value).replace("$$", "$")


def bootpig_services(compose: dict) -> dict[str, dict]:
    """Services that run one of our images (everything but Redis)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("bootpig-")
    }


# --- .env.example -----------------------------------------------------------------------------------


def env_example_entries(text: str | None = None) -> dict[str, str]:
    """`NAME=value` lines of .env.example, commented out or not."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8") if text is None else text
    entries = {}
    for line in text.splitlines():
        match = ENV_EXAMPLE_KEY.match(line.strip())
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


# --- Dockerfiles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of `CMD ["a", "b"]`; None for shell form."""
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, arguments = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        buffer = ""
    return instructions


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, _, value = instruction.arguments.partition("=")
            defaults[name.strip()] = value.strip().strip('"')
    return defaults


def base_images(instructions: list[Instruction]) -> list[str]:
    """FROM images with the ARG defaults substituted (as `docker build` without --build-arg does)."""
    defaults = arg_defaults(instructions)
    images = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            image = instruction.arguments.split()[0]
            images.append(re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), image))
    return images


def env_pairs(instructions: list[Instruction]) -> dict[str, str]:
    """Every ENV the image sets (`ENV A=1 B=2` form)."""
    pairs = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for token in shlex.split(instruction.arguments):
                name, _, value = token.partition("=")
                pairs[name] = value
    return pairs


def last(instructions: list[Instruction], keyword: str) -> Instruction | None:
    found = [instruction for instruction in instructions if instruction.keyword == keyword]
    return found[-1] if found else None


def copy_sources(instruction: Instruction) -> list[str]:
    """Source paths of a COPY (flags such as --chown skipped; the last word is the destination)."""
    words = [word for word in shlex.split(instruction.arguments) if not word.startswith("--")]
    return words[:-1]


# --- .dockerignore ----------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern:
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def dockerignore_excludes(relative_path: str, patterns: list[str] | None = None) -> bool:
    """Whether the build context leaves a file out (last matching rule wins; a rule matching a parent
    folder applies to everything inside it), as Docker's .dockerignore does."""
    if patterns is None:
        patterns = [
            line.strip()
            for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    parts = relative_path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!"))
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded
