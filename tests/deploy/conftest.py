"""Fixtures for the deployment tests (Dockerfile, docker-compose.yml, Helm chart).

The chart tests need `helm`: $HELM, else <repo>/.tools/bin/helm, else helm on PATH. Without it
they are skipped, unless HOOKBRIDGE_REQUIRE_TOOLS=1 (set by scripts/check-deploy.sh), in which
case a missing tool is a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy_helpers import CHART, KUBE_VERSION, VALUES_DIR, Rendered, find_tool, require_tools, run_helm


@pytest.fixture(scope="session")
def helm_bin() -> str:
    helm = find_tool("helm", "HELM")
    if helm is None:
        if require_tools():
            pytest.fail("helm not found ($HELM, .tools/bin/helm, PATH)")
        pytest.skip("helm not found: run scripts/check-deploy.sh once to install it into .tools/bin")
    return helm


def template_args(chart, values, sets, kube_version, *extra: str) -> list[str]:
    """`helm template` arguments: values files (relative ones under tests/deploy/values) and --set."""
    args = ["template", "hb", str(chart), *extra, "--kube-version", kube_version]
    for v in values:
        path = Path(v)
        if not path.is_absolute():
            path = VALUES_DIR / path
        args += ["-f", str(path)]
    for s in sets:
        args += ["--set", s]
    return args


@pytest.fixture(scope="session")
def render(helm_bin):
    """render(*values_files, sets=(...), kube_version=...) -> Rendered; fails on a helm error."""
    cache: dict = {}

    def _render(*values: str | Path, sets: tuple[str, ...] = (), kube_version: str = KUBE_VERSION,
                chart: Path = CHART) -> Rendered:
        key = (tuple(str(v) for v in values), tuple(sets), kube_version, str(chart))
        if key not in cache:
            args = template_args(chart, values, sets, kube_version, "--namespace", "webhooks")
            res = run_helm(helm_bin, args)
            assert res.returncode == 0, f"helm {' '.join(args)} failed:\n{res.stderr}"
            cache[key] = Rendered(res.stdout)
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def render_error(helm_bin):
    """render_error(*values_files, sets=(...)) -> stderr of a render that must fail."""

    def _render_error(*values: str | Path, sets: tuple[str, ...] = ()) -> str:
        args = template_args(CHART, values, sets, KUBE_VERSION)
        res = run_helm(helm_bin, args)
        assert res.returncode != 0, f"helm {' '.join(args)} rendered, but it must fail"
        return res.stderr

    return _render_error
