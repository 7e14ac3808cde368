"""Helpers shared by the deployment tests (a uniquely named module, so it never clashes with
another test folder's conftest).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "hookbridge"
VALUES_DIR = Path(__file__).resolve().parent / "values"
# the Kubernetes version the chart tests render for (the chart needs >= 1.30)
KUBE_VERSION = os.environ.get("HOOKBRIDGE_TEST_KUBE_VERSION", "1.33.0")


def require_tools() -> bool:
    return os.environ.get("HOOKBRIDGE_REQUIRE_TOOLS") == "1"


def find_tool(name: str, env: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    local = REPO / ".tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


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
        """The gateway container (sidecars may sit next to it)."""
        containers = [c for c in self.pod["containers"] if c["name"] == "hookbridge"]
        assert len(containers) == 1, [c["name"] for c in self.pod["containers"]]
        return containers[0]

    def config_toml(self) -> str:
        """config.toml of the gateway's ConfigMap (the dashboard and extra objects may be others)."""
        found = [d for d in self.all("ConfigMap") if "config.toml" in d.get("data", {})]
        assert len(found) == 1, f"expected one ConfigMap with config.toml, found {len(found)}"
        return found[0]["data"]["config.toml"]


def run_helm(helm: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)




def crd_files() -> list[str]:
    """CustomResourceDefinition files crdcheck validates against ($CRDCHECK_CRDS, separated by
    os.pathsep; scripts/check-deploy.sh sets it from the projects' Go modules)."""
    return [f for f in os.environ.get("CRDCHECK_CRDS", "").split(os.pathsep) if f]


def run_crdcheck(crdcheck: str, path) -> subprocess.CompletedProcess:
    """crdcheck on one file, with the CRDs of crd_files()."""
    args = [crdcheck]
    for f in crd_files():
        args += ["-crd", f]
    return subprocess.run([*args, str(path)], capture_output=True, text=True, timeout=60)
