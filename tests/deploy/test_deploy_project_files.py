"""LICENSE, CHANGELOG.md, SECURITY.md, CONTRIBUTING.md and the chart's Artifact Hub annotations:
present, in their formats, and agreeing with the code they describe."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from deploy_helpers import REPO

# SHA-256 of the Apache License 2.0 as the Apache Software Foundation publishes it
# (LICENSE-2.0.txt); Debian's /usr/share/common-licenses/Apache-2.0 and k8s.io/api's LICENSE in
# the Go module cache have the same bytes
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
DEBIAN_COPY = Path("/usr/share/common-licenses/Apache-2.0")


def release_module():
    spec = importlib.util.spec_from_file_location("release", REPO / ".github" / "scripts" / "release.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_license_is_the_apache_2_text_byte_for_byte():
    data = (REPO / "LICENSE").read_bytes()
    assert hashlib.sha256(data).hexdigest() == APACHE_2_SHA256
    if DEBIAN_COPY.is_file():
        assert data == DEBIAN_COPY.read_bytes()


def test_every_license_statement_says_apache_2():
    assert re.search(r'^license = "Apache-2.0"$', (REPO / "Cargo.toml").read_text(), re.M)
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in (REPO / "Dockerfile").read_text()
    chart = yaml.safe_load((REPO / "helm" / "hookbridge" / "Chart.yaml").read_text())
    assert chart["annotations"]["artifacthub.io/license"] == "Apache-2.0"


def test_changelog_follows_keep_a_changelog():
    rel = release_module()
    text = (REPO / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com/en/1.1.0" in text and "semver.org" in text
    sections = rel.changelog_sections(text)
    assert list(sections)[0] == "Unreleased", "the Unreleased section comes first"
    headings = re.findall(r"^## \[([^\]]+)\](.*)$", text, re.M)
    for name, rest in headings[1:]:
        assert rel.SEMVER.match(name), f"## [{name}] is not a version"
        assert re.fullmatch(r" - \d{4}-\d{2}-\d{2}", rest), f"## [{name}] needs ' - YYYY-MM-DD'"
    for name, body in sections.items():
        entries = rel.changes(body)  # raises on a kind Keep a Changelog does not have
        if name != "Unreleased":
            assert entries, f"## [{name}] lists no changes"
    assert len(rel.changes(sections["Unreleased"])) >= 5


def test_security_policy_says_how_to_report_and_what_is_in_scope():
    text = (REPO / "SECURITY.md").read_text()
    assert "security/advisories/new" in text and "Do not open a public issue" in text
    scope = text.split("## In scope", 1)[1].split("## Out of scope", 1)[0]
    for topic in ("Signature verification", "Secrets handling", "Denial of service at the edge",
                  "The chart's defaults"):
        assert f"**{topic}" in scope, topic
    assert "## Supported versions" in text
    assert "cosign verify ghcr.io/hookbridge/hookbridge" in text
    assert ".github/workflows/release\\.yml@refs/tags/v" in text, \
        "the identity is the release workflow on a tag"
    assert (REPO / ".github" / "workflows" / "release.yml").is_file()


def test_contributing_names_what_exists():
    text = (REPO / "CONTRIBUTING.md").read_text()
    for must in ("make run", "make test", "src/providers/<name>/mod.rs", "`PROVIDERS`",
                 "tests/fixtures/<name>/", "docs/providers.md", "docs/events.md"):
        assert must in text, must
    # every repository path it names exists (placeholders like <name> aside)
    for path in set(re.findall(r"`((?:[\w.-]+/)+[\w.-]*)`", text)):
        if "<" in path or path.startswith((".stack/", ".tools/", ".venv/")):
            continue  # placeholders, and folders the commands create
        assert (REPO / path).exists(), f"CONTRIBUTING.md names {path}, which does not exist"
    for word in ("check_common", "unknown_options", "record_headers", "sized_record"):
        assert re.search(rf"pub fn {word}\b", (REPO / "src" / "providers" / "mod.rs").read_text()), word
    assert re.search(r"pub static PROVIDERS: Registry", (REPO / "src" / "providers" / "mod.rs").read_text())
    assert re.search(r"pub trait Provider\b", (REPO / "src" / "providers" / "mod.rs").read_text())


def test_contributing_regenerates_events_md_as_the_test_asks():
    text = (REPO / "CONTRIBUTING.md").read_text()
    want = re.search(r'const REGENERATE: &str = "run `([^`]+)`";',
                     (REPO / "tests" / "integration" / "catalogue.rs").read_text()).group(1)
    assert want in text


# ------------------------------------------------------------------------------------------
# Artifact Hub annotations (https://artifacthub.io/docs/topics/annotations/helm/)

CATEGORIES = {"ai-machine-learning", "database", "integration-delivery", "monitoring-logging",
              "networking", "security", "storage", "streaming-messaging"}


@pytest.fixture(scope="module")
def chart() -> dict:
    return yaml.safe_load((REPO / "helm" / "hookbridge" / "Chart.yaml").read_text())


def test_artifact_hub_annotations_are_well_formed(chart):
    a = chart["annotations"]
    assert a["artifacthub.io/category"] in CATEGORIES
    assert a["artifacthub.io/prerelease"] in ("true", "false")
    assert a["artifacthub.io/containsSecurityUpdates"] in ("true", "false")
    links = yaml.safe_load(a["artifacthub.io/links"])
    assert all(set(link) == {"name", "url"} and link["url"].startswith("https://") for link in links)
    assert "support" in {link["name"] for link in links}, "Artifact Hub highlights a link named support"
    changes = yaml.safe_load(a["artifacthub.io/changes"])
    assert changes and all(set(c) == {"kind", "description"} for c in changes)
    assert {c["kind"] for c in changes} <= set(release_module().KINDS)
    assert "artifacthub.io/signKey" not in a, "signKey describes a PGP key; the chart is signed with cosign"


def test_artifact_hub_image_is_the_charts_default_image(chart):
    images = yaml.safe_load(chart["annotations"]["artifacthub.io/images"])
    repository = release_module().values_image(REPO)
    assert images == [{"name": "hookbridge", "image": f"{repository}:{chart['appVersion']}",
                       "platforms": ["linux/amd64", "linux/arm64"]}]
    release = (REPO / ".github" / "workflows" / "release.yml").read_text()
    assert "platforms: linux/amd64,linux/arm64" in release, "the annotation lists what the release builds"


def test_artifact_hub_links_point_at_files_that_exist(chart):
    for link in yaml.safe_load(chart["annotations"]["artifacthub.io/links"]):
        m = re.match(r"https://github\.com/hookbridge/hookbridge/blob/main/(.+)$", link["url"])
        if m:
            assert (REPO / m.group(1)).is_file(), link
