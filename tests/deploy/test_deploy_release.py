"""The release pipeline, which cannot run here (no GitHub, no registry): what
.github/workflows/release.yml and ci.yml do is checked from the files, and the steps that are not
actions (.github/scripts/release.py) run for real: tag checks, the chart packaged with a tag's
version, and `helm push` to a local OCI registry (go-containerregistry's `crane registry serve`).
scripts/check-deploy.sh also runs actionlint on both workflows.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from deploy_helpers import REPO, find_tool, require_tools

WORKFLOWS = REPO / ".github" / "workflows"
RELEASE_PY = REPO / ".github" / "scripts" / "release.py"
PLATFORMS = {"linux/amd64", "linux/arm64"}

# Every action the workflows use, pinned to the commit its version tag pointed to when checked:
# read with `git rev-parse <tag>^{commit}` in snapshots of the actions' own repositories
# (fetched 2026-11-30 through the search tool's `fetch`; their newest commits are from 2026-03
# (attest-build-provenance) to 2026-08, so newer releases may exist). Each is the newest
# release of the major version chosen; checkout, setup-go and setup-python stay on v6 although
# v7 exists, because actionlint 1.7.12's action metadata knows v6 (check-deploy lints the inputs
# against it). Changing a pin means checking the new SHA the same way and updating this table.
PINS = {
    "actions/checkout": ("d23441a48e516b6c34aea4fa41551a30e30af803", "v6.1.0"),
    "actions/setup-python": ("ece7cb06caefa5fff74198d8649806c4678c61a1", "v6.3.0"),
    "actions/setup-go": ("924ae3a1cded613372ab5595356fb5720e22ba16", "v6.5.0"),
    "docker/setup-qemu-action": ("96fe6ef7f33517b61c61be40b68a1882f3264fb8", "v4.2.0"),
    "docker/setup-buildx-action": ("37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"),
    "docker/login-action": ("4907a6ddec9925e35a0a9e82d7399ccc52663121", "v4.1.0"),
    "docker/build-push-action": ("53b7df96c91f9c12dcc8a07bcb9ccacbed38856a", "v7.3.0"),
    "sigstore/cosign-installer": ("6f9f17788090df1f26f669e9d70d6ae9567deba6", "v4.1.2"),
    "actions/attest-build-provenance": ("a2bbfa25375fe432b6a289bc6b6cd05ecd0c4c32", "v4.1.0"),
    "Azure/setup-helm": ("9bc31f4ebc9c6b171d7bfbaa5d006ae7abdb4310", "v5.0.1"),
}


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as true
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


@pytest.fixture(scope="module")
def release() -> dict:
    return load("release.yml")


@pytest.fixture(scope="module")
def ci() -> dict:
    return load("ci.yml")


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def one_step(job: dict, action: str) -> dict:
    found = steps_using(job, action)
    assert len(found) == 1, f"expected one {action} step, found {len(found)}"
    return found[0]


def index_of(job: dict, step: dict) -> int:
    return next(i for i, s in enumerate(job["steps"]) if s is step)


def run_steps(job: dict, pattern: str) -> list[dict]:
    return [s for s in job["steps"] if re.search(pattern, s.get("run", ""))]


def expr(text: str) -> str:
    """`${{ a.b }}` -> `a.b`."""
    m = re.fullmatch(r"\$\{\{\s*(.+?)\s*\}\}", str(text).strip())
    assert m, f"not a single expression: {text!r}"
    return m.group(1)


def dockerfile_args() -> set[str]:
    return set(re.findall(r"^ARG ([A-Z_]+)", (REPO / "Dockerfile").read_text(), re.M))


def check_deploy_var(name: str) -> str:
    m = re.search(rf'^{name}="([^"]+)"', (REPO / "scripts" / "check-deploy.sh").read_text(), re.M)
    assert m, f"scripts/check-deploy.sh sets no {name}"
    return m.group(1)


# ------------------------------------------------------------------------------------------
# pins and permissions, both workflows


@pytest.mark.parametrize("name", ["release.yml", "ci.yml"])
def test_every_action_is_pinned_to_a_checked_commit(name):
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+?)@(\S+)(.*)$", (WORKFLOWS / name).read_text(), re.M)
    assert uses, f"{name} uses no action?"
    for action, ref, rest in uses:
        assert action in PINS, f"{name}: {action} is not in PINS (check its commit and add it)"
        sha, tag = PINS[action]
        assert ref == sha, f"{name}: {action}@{ref}, but the checked commit of {tag} is {sha}"
        assert rest.strip() == f"# {tag}", f"{name}: {action}@{ref} must say `# {tag}`"


def test_release_runs_only_on_version_tags(release):
    assert release["on"] == {"push": {"tags": ["v*"]}}


def test_release_permissions_are_minimal_per_job(release):
    assert release["permissions"] == {}, "nothing at the top level: each job asks for its own"
    want = {
        "prepare": {"contents": "read"},
        "image": {"contents": "read", "packages": "write", "id-token": "write",
                  "attestations": "write", "artifact-metadata": "write"},
        "chart": {"contents": "read", "packages": "write", "id-token": "write"},
    }
    assert {k: j.get("permissions") for k, j in release["jobs"].items()} == want


def test_ci_runs_ci_run_as_root_with_a_generous_timeout(ci):
    assert set(ci["on"]) == {"push", "pull_request"}
    assert ci["permissions"] == {"contents": "read"}
    (job,) = ci["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")
    assert 120 <= job["timeout-minutes"] <= 360, "a fresh-clone .ci/run takes 30-45 min on 2 cores"
    (run,) = run_steps(job, r"\.ci/run")
    assert re.search(r"^\s*sudo\b.*", run["run"], re.M) and re.search(r"\bbash \.ci/run\s*$", run["run"])
    assert '"PATH=$PATH"' in run["run"], "sudo's secure_path would drop the toolchains set up before"


def test_ci_toolchains_match_the_project(ci):
    (job,) = ci["jobs"].values()
    go = one_step(job, "actions/setup-go")["with"]
    assert (REPO / go["go-version-file"]).is_file()
    rust = next(s["run"] for s in job["steps"] if "rustup toolchain install" in s.get("run", ""))
    want = re.search(r"^ARG RUST_VERSION=(\S+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    assert f"rustup toolchain install {want} " in rust and f"rustup default {want}" in rust
    assert "rustfmt" in rust and "clippy" in rust, "make lint runs cargo fmt and clippy"
    assert one_step(job, "actions/setup-python")["with"]["python-version"] == "3.11"


# ------------------------------------------------------------------------------------------
# the image


def test_image_is_built_for_amd64_and_arm64_from_the_dockerfile(release):
    job = release["jobs"]["image"]
    build = one_step(job, "docker/build-push-action")
    w = build["with"]
    assert set(w["platforms"].split(",")) == PLATFORMS
    assert w["context"] == "." and w["file"] == "Dockerfile" and w["target"] == "runtime"
    assert (REPO / w["file"]).is_file()
    qemu = one_step(job, "docker/setup-qemu-action")
    assert "arm64" in qemu["with"]["platforms"], "arm64 is emulated on the amd64 runner"
    buildx = one_step(job, "docker/setup-buildx-action")
    assert index_of(job, qemu) < index_of(job, build) and index_of(job, buildx) < index_of(job, build)
    assert job["timeout-minutes"] >= 120, "an emulated arm64 Rust build takes long"


def test_image_build_args_are_the_dockerfiles(release):
    w = one_step(release["jobs"]["image"], "docker/build-push-action")["with"]
    args = dict(line.split("=", 1) for line in w["build-args"].strip().splitlines())
    assert set(args) == {"VERSION", "REVISION", "CREATED"}
    assert set(args) <= dockerfile_args(), "every build argument is declared in the Dockerfile"
    assert expr(args["VERSION"]) == "needs.prepare.outputs.version"
    assert expr(args["REVISION"]) == "github.sha"
    assert expr(args["CREATED"]) == "needs.prepare.outputs.created"


def test_image_is_pushed_to_ghcr_with_sbom_and_max_provenance(release):
    job = release["jobs"]["image"]
    build = one_step(job, "docker/build-push-action")
    w = build["with"]
    assert w["push"] is True
    assert w["sbom"] is True
    assert w["provenance"] == "mode=max"
    assert expr(w["tags"]) == "needs.prepare.outputs.tags"
    login = one_step(job, "docker/login-action")
    assert login["with"]["registry"] == "ghcr.io" and index_of(job, login) < index_of(job, build)
    assert expr(login["with"]["password"]) == "secrets.GITHUB_TOKEN"
    assert expr(job["outputs"]["digest"]) == f"steps.{build['id']}.outputs.digest"


def test_image_is_signed_by_digest_and_attested(release):
    job = release["jobs"]["image"]
    build_id = one_step(job, "docker/build-push-action")["id"]
    installer = one_step(job, "sigstore/cosign-installer")
    (sign,) = run_steps(job, r"\bcosign sign\b")
    assert index_of(job, installer) < index_of(job, sign)
    assert sign["run"].strip() == 'cosign sign --yes "${IMAGE}@${DIGEST}"', "keyless, by digest, never by tag"
    assert expr(sign["env"]["DIGEST"]) == f"steps.{build_id}.outputs.digest"
    assert expr(sign["env"]["IMAGE"]) == "needs.prepare.outputs.image"
    attest = one_step(job, "actions/attest-build-provenance")["with"]
    assert expr(attest["subject-digest"]) == f"steps.{build_id}.outputs.digest"
    assert expr(attest["subject-name"]) == "needs.prepare.outputs.image"
    assert attest["push-to-registry"] is True


def test_prepare_checks_the_tag_before_anything_is_pushed(release):
    jobs = release["jobs"]
    assert jobs["image"]["needs"] == "prepare"
    assert set(jobs["chart"]["needs"]) == {"prepare", "image"}, "the chart's image exists before the chart"
    (facts,) = run_steps(jobs["prepare"], r"release\.py version")
    assert '--owner "$OWNER"' in facts["run"] and '"$GITHUB_OUTPUT"' in facts["run"]
    assert expr(facts["env"]["TAG"]) == "github.ref_name"
    assert expr(facts["env"]["OWNER"]) == "github.repository_owner"
    for key in ("version", "prerelease", "owner", "image", "tags", "created"):
        assert expr(jobs["prepare"]["outputs"][key]) == f"steps.{facts['id']}.outputs.{key}"


# ------------------------------------------------------------------------------------------
# the chart


def test_chart_is_packaged_with_the_tag_version_pushed_to_ghcr_and_signed(release):
    job = release["jobs"]["chart"]
    helm = one_step(job, "Azure/setup-helm")
    assert expr(helm["with"]["version"]) == "env.HELM_VERSION"
    assert release["env"]["HELM_VERSION"] == check_deploy_var("HELM_VERSION"), \
        "the release packages with the helm that check-deploy lints with"
    (package,) = run_steps(job, r"release\.py chart\b")
    assert '--version "$VERSION"' in package["run"] and '--image "$IMAGE"' in package["run"]
    assert expr(package["env"]["VERSION"]) == "needs.prepare.outputs.version"
    assert expr(package["env"]["IMAGE"]) == "needs.prepare.outputs.image"
    (push,) = run_steps(job, r"release\.py push-chart\b")
    assert '"oci://ghcr.io/${OWNER}/charts"' in push["run"]
    assert expr(push["env"]["OWNER"]) == "needs.prepare.outputs.owner"
    assert expr(push["env"]["CHART"]) == f"steps.{package['id']}.outputs.chart"
    (sign,) = run_steps(job, r"\bcosign sign\b")
    assert 'cosign sign --yes "${REPOSITORY}@${DIGEST}"' in sign["run"]
    assert expr(sign["env"]["DIGEST"]) == f"steps.{push['id']}.outputs.digest"
    assert expr(sign["env"]["REPOSITORY"]) == f"steps.{push['id']}.outputs.repository"
    installer = one_step(job, "sigstore/cosign-installer")
    login = one_step(job, "docker/login-action")
    assert login["with"]["registry"] == "ghcr.io"
    assert index_of(job, installer) < index_of(job, sign) and index_of(job, login) < index_of(job, push)


# ------------------------------------------------------------------------------------------
# release.py, run


def rel(*args: str, root: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(RELEASE_PY)]
    if root is not None:
        cmd += ["--root", str(root)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)


def facts(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.strip().splitlines())


CHANGELOG = """# Changelog

## [Unreleased]

### Added

- Something not released yet.

## [1.2.3] - 2026-12-01

### Added

- A thing with "quotes" and a `code` span,
  continued on a second line.

### Security

- A signature check that could be skipped.

## [1.2.2] - 2026-11-01

### Fixed

- An older fix.
"""


@pytest.fixture
def fake_repo(tmp_path) -> Path:
    """A repository with the real chart, Cargo.toml at 1.2.3 and CHANGELOG above, committed."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "helm" / "hookbridge", root / "helm" / "hookbridge")
    (root / "Cargo.toml").write_text('[package]\nname = "hookbridge"\nversion = "1.2.3"\n')
    (root / "CHANGELOG.md").write_text(CHANGELOG)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_COMMITTER_DATE": "2026-12-01T10:20:30Z",
           "GIT_AUTHOR_DATE": "2026-12-01T10:20:30Z", "PATH": "/usr/bin:/bin"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    return root


def set_cargo(root: Path, version: str):
    (root / "Cargo.toml").write_text(f'[package]\nname = "hookbridge"\nversion = "{version}"\n')


def test_version_facts_for_a_release(fake_repo):
    res = rel("version", "v1.2.3", "--owner", "HookBridge", root=fake_repo)
    assert res.returncode == 0, res.stderr
    f = facts(res.stdout)
    assert f == {
        "version": "1.2.3",
        "prerelease": "false",
        "owner": "hookbridge",
        "image": "ghcr.io/hookbridge/hookbridge",
        "tags": "ghcr.io/hookbridge/hookbridge:1.2.3,ghcr.io/hookbridge/hookbridge:1.2",
        "created": "2026-12-01T10:20:30Z",
    }


def test_a_prerelease_gets_only_its_own_tag_and_may_use_unreleased(fake_repo):
    set_cargo(fake_repo, "1.3.0-rc.1")
    res = rel("version", "v1.3.0-rc.1", "--owner", "hookbridge", root=fake_repo)
    assert res.returncode == 0, res.stderr
    f = facts(res.stdout)
    assert f["prerelease"] == "true"
    assert f["tags"] == "ghcr.io/hookbridge/hookbridge:1.3.0-rc.1"


@pytest.mark.parametrize("tag", ["1.2.3", "v1.2", "v01.2.3", "v1.2.3+build.5", "v1.2.3-", "release-1.2.3"])
def test_tags_that_are_not_semver_are_refused(fake_repo, tag):
    res = rel("version", tag, "--owner", "hookbridge", root=fake_repo)
    assert res.returncode == 1 and "release:" in res.stderr and not res.stdout


def test_a_tag_that_differs_from_cargo_toml_is_refused(fake_repo):
    set_cargo(fake_repo, "1.2.4")
    res = rel("version", "v1.2.3", "--owner", "hookbridge", root=fake_repo)
    assert res.returncode == 1 and 'Cargo.toml says version = "1.2.4"' in res.stderr


def test_a_release_without_its_changelog_section_is_refused(fake_repo):
    set_cargo(fake_repo, "1.2.4")
    res = rel("version", "v1.2.4", "--owner", "hookbridge", root=fake_repo)
    assert res.returncode == 1 and "no `## [1.2.4]` section" in res.stderr


def test_a_changelog_kind_artifact_hub_does_not_know_is_refused(fake_repo):
    path = fake_repo / "CHANGELOG.md"
    path.write_text(path.read_text().replace("### Security", "### Improved"))
    res = rel("version", "v1.2.3", "--owner", "hookbridge", root=fake_repo)
    assert res.returncode == 1 and "`### Improved` is not one of" in res.stderr


def test_an_owner_whose_image_the_chart_does_not_install_is_refused(fake_repo):
    res = rel("version", "v1.2.3", "--owner", "someone-else", root=fake_repo)
    assert res.returncode == 1
    assert "ghcr.io/hookbridge/hookbridge" in res.stderr and "ghcr.io/someone-else/hookbridge" in res.stderr


def test_the_repository_itself_passes_every_check_but_the_release_section():
    """The real Cargo.toml, chart and CHANGELOG.md: only `## [X.Y.Z]` is missing before a release."""
    cargo = re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M).group(1)
    res = rel("version", f"v{cargo}", "--owner", "hookbridge")
    if res.returncode == 0:
        assert facts(res.stdout)["version"] == cargo
    else:
        assert f"CHANGELOG.md has no `## [{cargo}]` section" in res.stderr, res.stderr


@pytest.fixture(scope="module")
def helm(helm_bin) -> str:
    return helm_bin


def show_chart(helm: str, tgz: str) -> dict:
    res = subprocess.run([helm, "show", "chart", tgz], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)


def package(helm: str, root: Path, version: str, out: Path, image="ghcr.io/hookbridge/hookbridge") -> str:
    res = rel("chart", "--version", version, "--image", image, "--out", str(out), "--helm", helm, root=root)
    assert res.returncode == 0, res.stderr
    tgz = facts(res.stdout)["chart"]
    assert Path(tgz).is_file() and tgz.endswith(f"hookbridge-{version}.tgz")
    return tgz


def test_chart_is_packaged_with_the_version_as_version_and_app_version(helm, fake_repo, tmp_path):
    tgz = package(helm, fake_repo, "1.2.3", tmp_path / "dist")
    chart = show_chart(helm, tgz)
    assert chart["version"] == "1.2.3" and chart["appVersion"] == "1.2.3"
    a = chart["annotations"]
    assert yaml.safe_load(a["artifacthub.io/images"]) == [
        {"name": "hookbridge", "image": "ghcr.io/hookbridge/hookbridge:1.2.3",
         "platforms": sorted(PLATFORMS)}]
    assert a["artifacthub.io/prerelease"] == "false"
    assert a["artifacthub.io/containsSecurityUpdates"] == "true"
    assert yaml.safe_load(a["artifacthub.io/changes"]) == [
        {"kind": "added", "description": 'A thing with "quotes" and a `code` span, continued on a second line.'},
        {"kind": "security", "description": "A signature check that could be skipped."},
    ]
    source = yaml.safe_load((REPO / "helm" / "hookbridge" / "Chart.yaml").read_text())["annotations"]
    for key in ("artifacthub.io/license", "artifacthub.io/links", "artifacthub.io/category"):
        assert a[key] == source[key], f"{key} is carried over unchanged"
    # the packaged chart's default image is the release's: repository from values, tag = appVersion
    res = subprocess.run([helm, "template", "hb", tgz, "--kube-version", "1.33.0", "--show-only",
                          "templates/deployment.yaml"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    images = {c["image"] for c in yaml.safe_load(res.stdout)["spec"]["template"]["spec"]["containers"]}
    assert "ghcr.io/hookbridge/hookbridge:1.2.3" in images


def test_a_prerelease_chart_says_so(helm, fake_repo, tmp_path):
    tgz = package(helm, fake_repo, "1.3.0-rc.1", tmp_path / "dist")
    chart = show_chart(helm, tgz)
    assert chart["version"] == chart["appVersion"] == "1.3.0-rc.1"
    a = chart["annotations"]
    assert a["artifacthub.io/prerelease"] == "true"
    assert a["artifacthub.io/containsSecurityUpdates"] == "false"
    assert yaml.safe_load(a["artifacthub.io/changes"]) == [
        {"kind": "added", "description": "Something not released yet."}]


def test_the_real_chart_yaml_is_left_alone(helm, fake_repo, tmp_path):
    before = (fake_repo / "helm" / "hookbridge" / "Chart.yaml").read_text()
    package(helm, fake_repo, "1.2.3", tmp_path / "dist")
    assert (fake_repo / "helm" / "hookbridge" / "Chart.yaml").read_text() == before


@pytest.fixture
def oci_registry(tmp_path):
    """An OCI registry on 127.0.0.1 (go-containerregistry's crane registry serve), in memory."""
    crane = find_tool("crane", "CRANE")
    if crane is None:
        if require_tools():
            pytest.fail("crane not found ($CRANE, .tools/bin/crane, PATH)")
        pytest.skip("crane not found: scripts/check-deploy.sh installs it into .tools/bin")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "registry.log", "w")
    proc = subprocess.Popen([crane, "registry", "serve", "--address", f"127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "registry.log").read_text()
                time.sleep(0.1)
        yield crane, f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_chart_push_reports_the_digest_the_registry_holds(helm, fake_repo, tmp_path, oci_registry):
    crane, registry = oci_registry
    tgz = package(helm, fake_repo, "1.2.3", tmp_path / "dist")
    res = rel("push-chart", tgz, f"oci://{registry}/hookbridge/charts", "--helm", helm, "--plain-http")
    assert res.returncode == 0, res.stderr
    f = facts(res.stdout)
    assert f["ref"] == f"{registry}/hookbridge/charts/hookbridge:1.2.3"
    assert f["repository"] == f"{registry}/hookbridge/charts/hookbridge"
    held = subprocess.run([crane, "digest", "--insecure", f["ref"]], capture_output=True, text=True, timeout=30)
    assert held.returncode == 0, held.stderr
    assert f["digest"] == held.stdout.strip(), "cosign would sign another digest than the registry serves"
    manifest = subprocess.run([crane, "manifest", "--insecure", f"{f['repository']}@{f['digest']}"],
                              capture_output=True, text=True, timeout=30)
    assert manifest.returncode == 0, manifest.stderr
    assert '"application/vnd.cncf.helm.config.v1+json"' in manifest.stdout


def test_chart_push_refuses_a_remote_that_is_not_oci(helm, fake_repo, tmp_path):
    tgz = package(helm, fake_repo, "1.2.3", tmp_path / "dist")
    res = rel("push-chart", tgz, "https://charts.example.org", "--helm", helm)
    assert res.returncode == 1 and "OCI registry" in res.stderr


# ------------------------------------------------------------------------------------------
# actionlint itself fails on findings (scripts/check-deploy.sh relies on it)


@pytest.fixture(scope="module")
def actionlint() -> str:
    tool = find_tool("actionlint", "ACTIONLINT")
    if tool is None:
        if require_tools():
            pytest.fail("actionlint not found ($ACTIONLINT, .tools/bin/actionlint, PATH)")
        pytest.skip("actionlint not found: scripts/check-deploy.sh installs it into .tools/bin")
    return tool


def run_actionlint(actionlint: str, *files) -> subprocess.CompletedProcess:
    args = [actionlint]
    shellcheck = find_tool("shellcheck", "SHELLCHECK")
    if shellcheck:
        args += ["-shellcheck", shellcheck]
    return subprocess.run([*args, *map(str, files)], capture_output=True, text=True, timeout=120)


def test_actionlint_passes_the_workflows(actionlint):
    res = run_actionlint(actionlint, *sorted(WORKFLOWS.glob("*.yml")))
    assert res.returncode == 0, res.stdout + res.stderr


def test_actionlint_fails_on_what_would_break_a_release(actionlint, tmp_path):
    """A misspelt permission, an input the action does not have, an output nobody sets and an
    unquoted variable in a script are all findings, so a finding fails check-deploy."""
    bad = tmp_path / "bad.yml"
    bad.write_text("""name: bad
on:
  push:
    tags: ["v*"]
permissions:
  id-token: writ
jobs:
  image:
    runs-on: ubuntu-24.04
    steps:
      - id: build
        uses: docker/build-push-action@v7
        with:
          platform: linux/amd64,linux/arm64
      - run: cosign sign --yes ghcr.io/x/y@$DIGEST
        env:
          DIGEST: ${{ steps.build.outputs.digests }}
""")
    res = run_actionlint(actionlint, bad)
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    assert '"writ"' in out and 'input "platform" is not defined' in out
    assert "digests" in out
    if find_tool("shellcheck", "SHELLCHECK"):
        assert "SC2086" in out


def test_annotation_rewrite_touches_only_the_keys_it_sets():
    spec = importlib.util.spec_from_file_location("release", RELEASE_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = (REPO / "helm" / "hookbridge" / "Chart.yaml").read_text()
    assert mod.set_annotations(text, {}) == text
    out = mod.set_annotations(text, {"artifacthub.io/prerelease": ['  artifacthub.io/prerelease: "true"']})
    changed = [(a, b) for a, b in zip(text.splitlines(), out.splitlines()) if a != b]
    assert changed == [('  artifacthub.io/prerelease: "false"', '  artifacthub.io/prerelease: "true"')]
    assert len(out.splitlines()) == len(text.splitlines())
    assert yaml.safe_load(out)["annotations"]["artifacthub.io/prerelease"] == "true"
