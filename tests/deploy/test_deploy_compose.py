"""docker-compose.yml, checked statically (Docker is not installed where the tests run)."""

from __future__ import annotations

import re

import pytest
from deploy_files import (
    COMPOSE_FILE,
    COMPOSE_ONLY,
    THIRD_PARTY_ENV,
    bootpig_services,
    compose_variables,
    env_example_entries,
    interpolate,
    load_compose,
)

from bootpig.cli import build_parser
from bootpig.commands.config import all_env_names


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def resolved(compose) -> dict:
    """The file as `docker compose config` would see it with no .env: every default substituted."""
    return interpolate(compose, env={})


def test_services_and_profiles(compose):
    services = compose["services"]
    assert {"redis", "api", "worker", "worker-cpu"} <= set(services)
    # Redis and the API always start; exactly one kind of worker per profile.
    assert "profiles" not in services["redis"] and "profiles" not in services["api"]
    assert services["worker"]["profiles"] == ["gpu"]
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert env_example_entries()["COMPOSE_PROFILES"] == "gpu", ".env.example must start the GPU stack"


def test_redis_persists_with_aof_on_a_volume_and_is_not_published(compose):
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data" and volume in compose["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]
    assert "ports" not in redis, "Redis must not be reachable from outside the compose network"
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+(-[a-z0-9.]+)?", redis["image"]), "pin the Redis tag"


def test_api_publishes_8000_waits_for_redis_and_checks_healthz(compose, resolved):
    api = compose["services"]["api"]
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    host_address, host_port, container_port = resolved["services"]["api"]["ports"][0].rsplit(":", 2)
    assert (host_port, container_port) == ("8000", "8000")
    probe = " ".join(api["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in probe
    args = build_parser().parse_args(api["command"])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8000)
    assert api["environment"]["BOOTPIG_PORT"] == "8000", "the probe and the listener must agree"


def test_gpu_worker_reserves_an_nvidia_gpu_and_scales_by_setting(compose, resolved):
    deploy = compose["services"]["worker"]["deploy"]
    devices = deploy["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert compose_variables(str(deploy["replicas"])) == {"DEPLOY_GPU_WORKERS"}
    assert int(resolved["services"]["worker"]["deploy"]["replicas"]) == 1
    cpu = compose["services"]["worker-cpu"]
    assert "resources" not in cpu.get("deploy", {}), "the CPU profile must run without a GPU"
    assert cpu["environment"]["BOOTPIG_DEVICE"] == "cpu"
    assert cpu["healthcheck"] == {"disable": True}


def test_workers_mount_the_models_volume_and_wait_for_redis(compose, resolved):
    for name in ("worker", "worker-cpu"):
        service = resolved["services"][name]
        mounts = dict(volume.rsplit(":", 1)[::-1] for volume in service["volumes"])
        assert mounts["/models"] in compose["volumes"], f"{name}: /models is not a declared volume"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["stop_grace_period"], f"{name}: give SIGTERM time to finish the job"


def test_every_service_commands_a_real_bootpig_subcommand(compose):
    parser = build_parser()
    expected = {"api": "serve", "worker": "worker", "worker-cpu": "worker"}
    for name, service in bootpig_services(compose).items():
        assert parser.parse_args(service["command"]).command == expected[name]


def test_settings_reach_containers_from_env_file(compose):
    for name, service in bootpig_services(compose).items():
        paths = [entry["path"] if isinstance(entry, dict) else entry for entry in service["env_file"]]
        assert paths == [".env"], name
        assert service["env_file"][0].get("required") is False, f"{name}: .env must be optional"


def test_env_vars_passed_into_containers_exist_in_settings(compose):
    settings_env = all_env_names()
    for name, service in bootpig_services(compose).items():
        unknown = set(service.get("environment", {})) - settings_env - THIRD_PARTY_ENV
        assert not unknown, f"{name} passes variables no setting reads: {sorted(unknown)}"


def test_every_interpolated_variable_is_documented_in_env_example():
    used = compose_variables(COMPOSE_FILE.read_text(encoding="utf-8"))
    documented = set(env_example_entries())
    assert used <= documented, f"undocumented in .env.example: {sorted(used - documented)}"
    settings_env = all_env_names()
    stray = {name for name in used if not COMPOSE_ONLY.match(name) and name not in settings_env}
    assert not stray, f"compose variables must be DEPLOY_* or settings: {sorted(stray)}"


def test_images_are_built_from_the_dockerfiles_in_docker(compose):
    for name, service in bootpig_services(compose).items():
        build = service["build"]
        assert build["context"] == "."
        assert (COMPOSE_FILE.parent / build["dockerfile"]).is_file(), name
        assert "TORCH_INDEX_URL" in build["args"], name
    cuda_index = compose["services"]["worker"]["build"]["args"]["TORCH_INDEX_URL"]
    assert (
        "/whl/cu" in cuda_index
        and "/whl/cpu" in compose["services"]["api"]["build"]["args"]["TORCH_INDEX_URL"]
    )
