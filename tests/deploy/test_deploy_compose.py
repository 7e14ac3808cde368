"""docker-compose.yml: the stack's shape (scripts/check-deploy.sh also validates it with Debian's
docker-compose and against the Compose Specification schema)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from deploy_helpers import REPO

COMPOSE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_stack_has_kafka_registry_and_gateway(services):
    assert {"kafka", "registry", "hookbridge"} <= set(services)
    # the repository can be replaced (KAFKA_IMAGE, REGISTRY_IMAGE: local builds where no registry
    # is reachable, scripts/images.sh); the defaults stay upstream's
    assert re.fullmatch(r"\$\{KAFKA_IMAGE:-apache/kafka\}:\$\{KAFKA_VERSION:-4\.\d+\.\d+\}",
                        services["kafka"]["image"])
    assert re.fullmatch(r"\$\{REGISTRY_IMAGE:-apicurio/apicurio-registry\}:\$\{APICURIO_VERSION:-3\.\d+\.\d+\}",
                        services["registry"]["image"])
    assert services["hookbridge"]["image"] == "${HOOKBRIDGE_IMAGE:-hookbridge}:${HOOKBRIDGE_VERSION:-dev}"
    assert services["hookbridge"]["build"]["context"] == "."
    assert services["hookbridge"]["build"].get("dockerfile", "Dockerfile") == "Dockerfile"


def test_kafka_is_single_node_kraft(services):
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith("1@")
    assert "ZOOKEEPER" not in " ".join(env)


def test_every_long_running_service_has_a_healthcheck(services):
    for name in ("kafka", "registry", "hookbridge"):
        hc = services[name].get("healthcheck")
        assert hc and hc.get("test"), f"{name} needs a healthcheck"


def test_gateway_waits_for_healthy_dependencies(services):
    deps = services["hookbridge"]["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["registry"]["condition"] == "service_healthy"


def test_gateway_healthcheck_uses_the_binary(services):
    assert services["hookbridge"]["healthcheck"]["test"] == \
        ["CMD", "/usr/local/bin/hookbridge", "healthcheck"]


def test_gateway_points_at_the_stack(services):
    env = services["hookbridge"]["environment"]
    assert env["HOOKBRIDGE_KAFKA_BROKERS"] == "kafka:9092"
    assert env["HOOKBRIDGE_SCHEMA_REGISTRY_URL"] == "http://registry:8080/apis/ccompat/v7"
    # one broker: replication factor above 1 cannot be satisfied
    assert env["HOOKBRIDGE_TOPIC_REPLICATION_FACTOR"] == "1"


def test_api_token_is_never_committed(services):
    env = services["hookbridge"]["environment"]
    for key in ("HOOKBRIDGE_SENDBIRD_API_TOKENS", "HOOKBRIDGE_SENDBIRD_APP_ID"):
        assert re.fullmatch(r"\$\{" + key + r":\?[^}]+\}", env[key]), \
            f"{key} must come from the environment or .env and be required (${{{key}:?...}})"
    assert "env_file" not in services["hookbridge"] or all(
        not str(f).endswith(".example") for f in services["hookbridge"]["env_file"])


def test_gateway_is_hardened_like_the_chart(services):
    hb = services["hookbridge"]
    assert hb["user"] == "65532:65532"
    assert hb["read_only"] is True
    assert hb["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in hb["security_opt"]


def test_example_env_file_lists_the_required_variables():
    text = (REPO / "deploy.env.example").read_text()
    for key in ("HOOKBRIDGE_SENDBIRD_APP_ID", "HOOKBRIDGE_SENDBIRD_API_TOKENS"):
        assert re.search(rf"^{key}=", text, re.M)


@pytest.mark.skipif(shutil.which("docker-compose") is None and os.environ.get("HOOKBRIDGE_REQUIRE_TOOLS") != "1",
                    reason="docker-compose not installed (scripts/check-deploy.sh installs it)")
def test_docker_compose_validates_and_refuses_to_run_without_a_token(tmp_path):
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not found"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_SENDBIRD_")}
    env.pop("DOCKER_HOST", None)
    ok = subprocess.run([exe, "--project-directory", str(REPO), "-f", str(COMPOSE),
                         "--env-file", str(REPO / "deploy.env.example"), "config", "-q"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = subprocess.run([exe, "--project-directory", str(REPO), "-f", str(COMPOSE),
                              "--env-file", str(empty), "config", "-q"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode != 0
    assert "HOOKBRIDGE_SENDBIRD_APP_ID" in missing.stderr or "HOOKBRIDGE_SENDBIRD_API_TOKENS" in missing.stderr
