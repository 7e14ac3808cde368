"""Shared helpers for the deployment tests (Dockerfile, docker-compose.yml, Helm chart).

The chart tests need `helm`: $HELM, else <repo>/.tools/bin/helm, else helm on PATH. Without it
they are skipped, unless HOOKBRIDGE_REQUIRE_TOOLS=1 (set by scripts/check-deploy.sh), in which
case a missing tool is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "hookbridge"
VALUES_DIR = Path(__file__).resolve().parent / "values"
# the Kubernetes version the chart tests render for (the chart needs >= 1.30)
KUBE_VERSION = os.environ.get("HOOKBRIDGE_TEST_KUBE_VERSION", "1.33.0")


def _require_tools() -> bool:
    return os.environ.get("HOOKBRIDGE_REQUIRE_TOOLS") == "1"


def find_tool(name: str, env: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    local = REPO / ".tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


@pytest.fixture(scope="session")
def helm_bin() -> str:
    helm = find_tool("helm", "HELM")
    if helm is None:
        if _require_tools():
            pytest.fail("helm not found ($HELM, .tools/bin/helm, PATH)")
        pytest.skip("helm not found: run scripts/check-deploy.sh once to install it into .tools/bin")
    return helm


class Rendered:
    """Parsed `helm template` output, indexed by kind."""

    def __init__(self, text: str):
        self.text = text
        self.docs = [d for d in yaml.safe_load_all(text) if d]

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind: str) -> dict:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {d["kind"] for d in self.docs}

    @property
    def deployment(self) -> dict:
        return self.one("Deployment")

    @property
    def pod(self) -> dict:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def container(self) -> dict:
        containers = self.pod["containers"]
        assert len(containers) == 1
        return containers[0]

    def config_toml(self) -> str:
        return self.one("ConfigMap")["data"]["config.toml"]


def run_helm(helm: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def render(helm_bin):
    """render(*values_files, sets=(...), kube_version=...) -> Rendered; fails on a helm error."""
    cache: dict = {}

    def _render(*values: str | Path, sets: tuple[str, ...] = (), kube_version: str = KUBE_VERSION,
                chart: Path = CHART) -> Rendered:
        key = (tuple(str(v) for v in values), tuple(sets), kube_version, str(chart))
        if key not in cache:
            args = ["template", "hb", str(chart), "--namespace", "webhooks", "--kube-version", kube_version]
            for v in values:
                path = Path(v)
                if not path.is_absolute():
                    path = VALUES_DIR / path
                args += ["-f", str(path)]
            for s in sets:
                args += ["--set", s]
            res = run_helm(helm_bin, args)
            assert res.returncode == 0, f"helm {' '.join(args)} failed:\n{res.stderr}"
            cache[key] = Rendered(res.stdout)
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def render_error(helm_bin):
    """render_error(*values_files, sets=(...)) -> stderr of a render that must fail."""

    def _render_error(*values: str | Path, sets: tuple[str, ...] = ()) -> str:
        args = ["template", "hb", str(CHART), "--kube-version", KUBE_VERSION]
        for v in values:
            path = Path(v)
            if not path.is_absolute():
                path = VALUES_DIR / path
            args += ["-f", str(path)]
        for s in sets:
            args += ["--set", s]
        res = run_helm(helm_bin, args)
        assert res.returncode != 0, f"helm {' '.join(args)} rendered, but it must fail"
        return res.stderr

    return _render_error
