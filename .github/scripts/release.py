#!/usr/bin/env python3
"""The steps of .github/workflows/release.yml that are not an action, kept here so they run (and
are tested, tests/deploy/test_deploy_release.py) on any machine, not only on a tag push.

  release.py version TAG --owner OWNER
      Checks the tag before anything is built or pushed and prints the release facts as
      KEY=VALUE lines for $GITHUB_OUTPUT: version, prerelease, owner, image, tags, created.
      Refuses a tag that is not vMAJOR.MINOR.PATCH[-PRERELEASE], a Cargo.toml version that
      differs (the binary reports Cargo's version in --version and hookbridge_build_info), a
      CHANGELOG.md without a `## [VERSION]` section (a pre-release may fall back to
      `## [Unreleased]`), and a chart whose default image (values.yaml image.repository) is not
      the image the release pushes.

  release.py chart --version VERSION --image IMAGE --out DIR [--helm HELM]
      Copies helm/hookbridge, sets its Artifact Hub annotations for this version (images,
      prerelease, changes and containsSecurityUpdates from CHANGELOG.md), runs `helm lint
      --strict` and `helm package --version VERSION --app-version VERSION`, and prints
      chart=<path of the .tgz>.

  release.py push-chart CHART_TGZ oci://REGISTRY/NAMESPACE [--helm HELM] [--plain-http]
      `helm push`, then prints ref=, repository= and digest= from helm's own report (helm writes
      "Pushed:" and "Digest:" to standard error), after checking the pushed reference is
      <repository>:<chart version>. The digest is what cosign signs.

Standard library only: it runs on the runner's python3 (3.11 or newer, for tomllib).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART_NAME = "hookbridge"
# Semantic Versioning 2.0.0 without build metadata: OCI tags cannot hold '+'.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$"
)
# Keep a Changelog's kinds of change, as Artifact Hub's `changes` kinds.
KINDS = ("added", "changed", "deprecated", "removed", "fixed", "security")


class ReleaseError(Exception):
    pass


# ------------------------------------------------------------------------------------------
# version


def parse_tag(tag: str) -> tuple[str, bool]:
    """vX.Y.Z[-pre] -> (X.Y.Z[-pre], is a pre-release)."""
    if not tag.startswith("v"):
        raise ReleaseError(f"tag {tag!r}: release tags are v<semver>, such as v1.2.3 or v1.3.0-rc.1")
    version = tag[1:]
    m = SEMVER.match(version)
    if not m:
        raise ReleaseError(f"tag {tag!r}: {version!r} is not MAJOR.MINOR.PATCH[-PRERELEASE] "
                           "(Semantic Versioning, no build metadata)")
    return version, m.group(4) is not None


def cargo_version(root: Path) -> str:
    with open(root / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["version"]


def changelog_sections(text: str) -> dict[str, str]:
    """`## [NAME]` headings of a Keep a Changelog file -> the text under each."""
    sections: dict[str, str] = {}
    name = None
    lines: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^## \[([^\]]+)\]", line)
        if m:
            if name is not None:
                sections[name] = "\n".join(lines)
            name, lines = m.group(1), []
        elif line.startswith("## "):
            raise ReleaseError(f"CHANGELOG.md: heading {line!r} is not `## [VERSION]` or `## [Unreleased]`")
        elif name is not None:
            lines.append(line)
    if name is not None:
        sections[name] = "\n".join(lines)
    return sections


def release_notes(root: Path, version: str, prerelease: bool) -> list[tuple[str, str]]:
    """The (kind, description) entries of the CHANGELOG section for `version`."""
    sections = changelog_sections((root / "CHANGELOG.md").read_text())
    if version in sections:
        body = sections[version]
    elif prerelease and "Unreleased" in sections:
        body = sections["Unreleased"]
    else:
        raise ReleaseError(f"CHANGELOG.md has no `## [{version}]` section: move the Unreleased "
                           f"entries under `## [{version}] - <date>` before tagging")
    entries = changes(body)
    if not entries:
        raise ReleaseError(f"CHANGELOG.md: the section for {version} lists no changes")
    return entries


def changes(body: str) -> list[tuple[str, str]]:
    """`### Kind` subsections with `- item` bullets (continued on indented lines)."""
    entries: list[tuple[str, str]] = []
    kind = None
    for line in body.splitlines():
        m = re.match(r"^### (\w+)\s*$", line)
        if m:
            kind = m.group(1).lower()
            if kind not in KINDS:
                raise ReleaseError(f"CHANGELOG.md: `### {m.group(1)}` is not one of Keep a Changelog's "
                                   f"kinds ({', '.join(k.capitalize() for k in KINDS)})")
            continue
        if line.startswith("- "):
            if kind is None:
                raise ReleaseError(f"CHANGELOG.md: entry outside a `### Kind` subsection: {line!r}")
            entries.append((kind, line[2:].strip()))
        elif line.startswith("  ") and line.strip() and entries:
            k, text = entries[-1]
            entries[-1] = (k, f"{text} {line.strip()}")
    return entries


def values_image(root: Path) -> str:
    """image.repository of the chart's values.yaml (read as text: no YAML library here)."""
    lines = (root / "helm" / CHART_NAME / "values.yaml").read_text().splitlines()
    if "image:" in lines:
        for line in lines[lines.index("image:") + 1:]:
            if line and not line.startswith(" ") and not line.startswith("#"):
                break  # the next top-level key
            m = re.match(r"^  repository: *[\"']?([^\"'\s#]+)", line)
            if m:
                return m.group(1)
    raise ReleaseError("helm/hookbridge/values.yaml: no image.repository")


def commit_time(root: Path) -> str:
    """The commit's time in UTC (OCI `created`, reproducible for a given commit)."""
    out = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct", "HEAD"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise ReleaseError(f"git log: {out.stderr.strip()}")
    return datetime.fromtimestamp(int(out.stdout.strip()), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_version(args: argparse.Namespace) -> dict[str, str]:
    root = Path(args.root)
    version, prerelease = parse_tag(args.tag)
    cargo = cargo_version(root)
    if cargo != version:
        raise ReleaseError(f"tag {args.tag} but Cargo.toml says version = \"{cargo}\": the binary "
                           f"would report {cargo}; bump Cargo.toml (and Cargo.lock) first")
    release_notes(root, version, prerelease)
    owner = args.owner.lower()  # image names are lowercase; GitHub owners may not be
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,38})", owner):
        raise ReleaseError(f"owner {args.owner!r} cannot be a ghcr.io namespace")
    image = f"ghcr.io/{owner}/{CHART_NAME}"
    chart_image = values_image(root)
    if chart_image != image:
        raise ReleaseError(f"the chart's default image is {chart_image} (helm/hookbridge/values.yaml) "
                           f"but this release pushes {image}: installs would pull another image")
    tags = [f"{image}:{version}"]
    if not prerelease:
        major, minor, _ = version.split(".")
        tags.append(f"{image}:{major}.{minor}")
    return {
        "version": version,
        "prerelease": "true" if prerelease else "false",
        "owner": owner,
        "image": image,
        "tags": ",".join(tags),
        "created": commit_time(root),
    }


# ------------------------------------------------------------------------------------------
# chart


def annotations_block(text: str) -> tuple[int, int, list[str], list[tuple[str, list[str]]]]:
    """Finds Chart.yaml's top-level `annotations:` block: (first line, end line, comment lines
    before the first key, [(key, lines)]) where each key's lines are its own line and its
    indented continuation."""
    lines = text.split("\n")
    try:
        start = lines.index("annotations:")
    except ValueError:
        raise ReleaseError("Chart.yaml has no top-level `annotations:` block") from None
    end = start + 1
    while end < len(lines) and (lines[end].startswith(" ") or lines[end] == ""):
        end += 1
    while end > start + 1 and lines[end - 1] == "":
        end -= 1  # blank lines after the block stay after it
    head: list[str] = []
    entries: list[tuple[str, list[str]]] = []
    for line in lines[start + 1:end]:
        m = re.match(r"^  ([^ #][^:]*):(?: |$)", line)
        if m:
            entries.append((m.group(1), [line]))
        elif entries:
            entries[-1][1].append(line)
        elif line.strip() and not line.strip().startswith("#"):
            raise ReleaseError(f"Chart.yaml annotations: unexpected line {line!r}")
        else:
            head.append(line)
    return start, end, head, entries


def set_annotations(text: str, new: dict[str, list[str]]) -> str:
    """Replaces (or adds) annotation keys; `new` maps key -> its lines, key line included."""
    start, end, head, entries = annotations_block(text)
    seen = set()
    out_entries = []
    for key, lines in entries:
        if key in new:
            seen.add(key)
            # keep blank lines and comments that trail the old value (they belong to the next key)
            trailing = []
            while lines and (lines[-1] == "" or lines[-1].lstrip().startswith("#")):
                trailing.insert(0, lines.pop())
            out_entries.append(new[key] + trailing)
        else:
            out_entries.append(lines)
    for key, lines in new.items():
        if key not in seen:
            out_entries.append(lines)
    all_lines = text.split("\n")
    block = ["annotations:"] + head + [line for e in out_entries for line in e]
    return "\n".join(all_lines[:start] + block + all_lines[end:])


def yaml_str(s: str) -> str:
    # a JSON string is a valid YAML double-quoted scalar
    return json.dumps(s, ensure_ascii=False)


def chart_annotations(root: Path, version: str, image: str) -> dict[str, list[str]]:
    prerelease = SEMVER.match(version).group(4) is not None
    entries = release_notes(root, version, prerelease)
    changes_lines = ["  artifacthub.io/changes: |"]
    for kind, description in entries:
        changes_lines += [f"    - kind: {kind}", f"      description: {yaml_str(description)}"]
    security = any(kind == "security" for kind, _ in entries)
    return {
        "artifacthub.io/images": [
            "  artifacthub.io/images: |",
            f"    - name: {CHART_NAME}",
            f"      image: {image}:{version}",
            "      platforms:",
            "        - linux/amd64",
            "        - linux/arm64",
        ],
        "artifacthub.io/prerelease": [f'  artifacthub.io/prerelease: "{str(prerelease).lower()}"'],
        "artifacthub.io/containsSecurityUpdates": [
            f'  artifacthub.io/containsSecurityUpdates: "{str(security).lower()}"'],
        "artifacthub.io/changes": changes_lines,
    }


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise ReleaseError(f"{cmd[0]}: not found") from None


def cmd_chart(args: argparse.Namespace) -> dict[str, str]:
    root = Path(args.root)
    version = args.version
    if not SEMVER.match(version):
        raise ReleaseError(f"chart version {version!r} is not Semantic Versioning")
    out = Path(args.out).resolve()
    work = out / "chart-src"
    if work.exists():
        shutil.rmtree(work)
    src = work / CHART_NAME
    shutil.copytree(root / "helm" / CHART_NAME, src)
    chart_yaml = src / "Chart.yaml"
    chart_yaml.write_text(set_annotations(chart_yaml.read_text(),
                                          chart_annotations(root, version, args.image)))
    lint = run([args.helm, "lint", "--strict", str(src)])
    if lint.returncode != 0:
        raise ReleaseError(f"helm lint --strict on the release copy:\n{lint.stdout}{lint.stderr}")
    pkg = run([args.helm, "package", str(src), "--version", version, "--app-version", version,
               "--destination", str(out)])
    if pkg.returncode != 0:
        raise ReleaseError(f"helm package:\n{pkg.stdout}{pkg.stderr}")
    tgz = out / f"{CHART_NAME}-{version}.tgz"
    if not tgz.is_file():
        raise ReleaseError(f"helm package did not write {tgz}:\n{pkg.stdout}")
    shutil.rmtree(work)
    return {"chart": str(tgz)}


# ------------------------------------------------------------------------------------------
# push-chart


def chart_meta(helm: str, tgz: str) -> tuple[str, str]:
    show = run([helm, "show", "chart", tgz])
    if show.returncode != 0:
        raise ReleaseError(f"helm show chart {tgz}:\n{show.stderr}")
    name = re.search(r"^name: *(\S+)", show.stdout, re.M)
    version = re.search(r"^version: *['\"]?([^'\"\s]+)", show.stdout, re.M)
    if not (name and version):
        raise ReleaseError(f"helm show chart {tgz}: no name or version")
    return name.group(1), version.group(1)


def cmd_push_chart(args: argparse.Namespace) -> dict[str, str]:
    if not args.remote.startswith("oci://"):
        raise ReleaseError(f"{args.remote}: the chart goes to an OCI registry (oci://...)")
    name, version = chart_meta(args.helm, args.chart)
    cmd = [args.helm, "push", args.chart, args.remote]
    if args.plain_http:
        cmd.append("--plain-http")
    push = run(cmd)
    report = push.stdout + push.stderr
    if push.returncode != 0:
        raise ReleaseError(f"helm push failed:\n{report}")
    pushed = re.search(r"^Pushed: (\S+)$", report, re.M)
    digest = re.search(r"^Digest: (sha256:[0-9a-f]{64})$", report, re.M)
    if not (pushed and digest):
        raise ReleaseError(f"helm push reported no reference or digest:\n{report}")
    repository = f"{args.remote[len('oci://'):].rstrip('/')}/{name}"
    if pushed.group(1) != f"{repository}:{version}":
        raise ReleaseError(f"helm pushed {pushed.group(1)}, expected {repository}:{version}")
    return {"ref": pushed.group(1), "repository": repository, "digest": digest.group(1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(ROOT), help="the repository (default: this script's)")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("version", help="check the tag, print the release facts")
    v.add_argument("tag")
    v.add_argument("--owner", required=True, help="the GitHub owner (github.repository_owner)")
    c = sub.add_parser("chart", help="package the chart for a version")
    c.add_argument("--version", required=True)
    c.add_argument("--image", required=True, help="the image repository, without tag")
    c.add_argument("--out", required=True)
    c.add_argument("--helm", default="helm")
    u = sub.add_parser("push-chart", help="helm push, print the digest")
    u.add_argument("chart")
    u.add_argument("remote")
    u.add_argument("--helm", default="helm")
    u.add_argument("--plain-http", action="store_true", help="for a local test registry only")
    args = p.parse_args(argv)
    try:
        facts = {"version": cmd_version, "chart": cmd_chart, "push-chart": cmd_push_chart}[args.cmd](args)
    except ReleaseError as e:
        print(f"release: {e}", file=sys.stderr)
        return 1
    for key, value in facts.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
