"""Does the runtime base provide what the binary links against? A static check, for machines
where no image can be pulled or built from upstream bases.

The tables between the `runtime-packages` and `runtime-libraries` markers of docs/containers.md
are the documented contents of gcr.io/distroless/cc-debian13 (with their source). For each binary:
every `NEEDED` shared library (`readelf -d`) must be in the library table, every symbol version
the binary needs from it (`readelf -V`) must be met by a listed version of the same prefix that is
equal or newer, its package must be in the package table, and that package must be in
docker/runtime-base (named in the Dockerfile's PACKAGES, or documented as a dependency of a
package named there).

  python tests/deploy/runtime_libs.py BINARY...     (scripts/check-deploy.sh runs it)
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "containers.md"
RUNTIME_BASE_DOCKERFILE = REPO / "docker" / "runtime-base" / "Dockerfile"


@dataclass
class Library:
    soname: str
    package: str
    # prefix -> newest version (a tuple of ints), or None for an unversioned name
    versions: dict[str, tuple[int, ...] | None] = field(default_factory=dict)


@dataclass
class Package:
    name: str
    layer: str
    version: str
    runtime_base: str  # "named" or "dependency of `pkg`"


def split_version_name(name: str) -> tuple[str, tuple[int, ...] | None]:
    """GLIBC_2.41 -> ("GLIBC", (2, 41)); GLIBC_ABI_DT_RELR -> ("GLIBC_ABI_DT_RELR", None)."""
    m = re.fullmatch(r"([A-Za-z]+(?:_[A-Za-z]+)*)_([0-9]+(?:\.[0-9]+)*)", name)
    if m:
        return m.group(1), tuple(int(x) for x in m.group(2).split("."))
    return name, None


def _table(text: str, marker: str) -> list[list[str]]:
    m = re.search(rf"<!-- {marker}:begin -->\n(.*?)<!-- {marker}:end -->", text, re.S)
    if not m:
        raise ValueError(f"{DOC.name}: no {marker} table")
    rows = []
    for line in m.group(1).strip().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and not set(cells[0]) <= set("- "):
            rows.append(cells)
    return rows[1:]  # without the header


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented(text: str | None = None) -> tuple[dict[str, Library], dict[str, Package]]:
    text = DOC.read_text() if text is None else text
    packages = {}
    for cells in _table(text, "runtime-packages"):
        name = _ticked(cells[0])[0]
        packages[name] = Package(name, cells[1], cells[2], cells[3])
    libraries = {}
    for cells in _table(text, "runtime-libraries"):
        soname, package = _ticked(cells[0])[0], _ticked(cells[1])[0]
        lib = Library(soname, package)
        for name in _ticked(cells[2]):
            prefix, version = split_version_name(name)
            lib.versions[prefix] = version
        libraries[soname] = lib
    return libraries, packages


def runtime_base_packages(dockerfile: Path = RUNTIME_BASE_DOCKERFILE) -> set[str]:
    m = re.search(r'^ARG PACKAGES="([^"]*)"', dockerfile.read_text(), re.M)
    if not m:
        raise ValueError(f"{dockerfile}: no ARG PACKAGES=\"...\"")
    return set(m.group(1).split())


def _readelf(args: list[str], binary: Path) -> str:
    out = subprocess.run(["readelf", *args, str(binary)], capture_output=True, text=True,
                         env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise ValueError(f"readelf {' '.join(args)} {binary}: {out.stderr.strip()}")
    return out.stdout


def needed(binary: Path) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", _readelf(["-d", "--wide"], binary))


def version_needs(binary: Path) -> list[tuple[str, str]]:
    """(library, version name) pairs of .gnu.version_r."""
    out = _readelf(["-V", "--wide"], binary)
    section = out.split("Version needs section", 1)
    pairs = []
    current = None
    for line in (section[1] if len(section) > 1 else "").splitlines():
        if line.strip().startswith("Version definition section") or line.startswith("Version symbols"):
            break
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"Name: (\S+)", line)
        if m and current:
            pairs.append((current, m.group(1)))
    return pairs


def machine(binary: Path) -> str:
    m = re.search(r"Machine:\s+(.+)", _readelf(["-h"], binary))
    return m.group(1).strip() if m else "unknown"


def check(needs: list[str], versions: list[tuple[str, str]], libraries: dict[str, Library],
          packages: dict[str, Package], base: set[str]) -> list[str]:
    """Every problem, in words; empty when the base provides everything."""
    problems = []
    for soname in needs:
        lib = libraries.get(soname)
        if lib is None:
            problems.append(f"{soname}: not in gcr.io/distroless/cc-debian13 (docs/containers.md, "
                            "runtime-libraries)")
            continue
        pkg = packages.get(lib.package)
        if pkg is None:
            problems.append(f"{soname}: its package {lib.package} is not in the cc-debian13 package table")
            continue
        if pkg.runtime_base == "named":
            if lib.package not in base:
                problems.append(f"{soname}: {lib.package} is documented as named in runtime-base, "
                                "but docker/runtime-base/Dockerfile's PACKAGES lacks it")
        else:
            parents = _ticked(pkg.runtime_base)
            if not pkg.runtime_base.startswith("dependency of") or not parents:
                problems.append(f"{soname}: {lib.package}: unknown runtime-base entry {pkg.runtime_base!r}")
            elif not any(p in base for p in parents):
                problems.append(f"{soname}: {lib.package} comes into runtime-base with "
                                f"{', '.join(parents)}, which PACKAGES does not name")
    for soname, name in versions:
        lib = libraries.get(soname)
        if lib is None:
            continue  # reported above (a version need always belongs to a NEEDED library)
        prefix, version = split_version_name(name)
        if prefix not in lib.versions:
            problems.append(f"{soname}: needs {name}, but {soname} defines no {prefix} versions")
        elif version is None:
            if lib.versions[prefix] is not None:
                problems.append(f"{soname}: needs {name}, listed only with a version")
        elif lib.versions[prefix] is None or version > lib.versions[prefix]:
            newest = lib.versions[prefix]
            have = f"{prefix}_{'.'.join(map(str, newest))}" if newest else prefix
            problems.append(f"{soname}: needs {name}, newer than {have} in cc-debian13")
    return problems


def check_binary(binary: Path) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    libraries, packages = documented()
    needs, versions = needed(binary), version_needs(binary)
    return check(needs, versions, libraries, packages, runtime_base_packages()), needs, versions


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    failed = False
    for arg in argv:
        binary = Path(arg)
        problems, needs, versions = check_binary(binary)
        newest: dict[str, str] = {}
        for soname, name in versions:
            prefix, version = split_version_name(name)
            key = f"{soname} {prefix}"
            if version is not None and (key not in newest or version > split_version_name(newest[key])[1]):
                newest[key] = name
        shown = " ".join(f"{n}({', '.join(v for k, v in newest.items() if k.startswith(n + ' '))})"
                         if any(k.startswith(n + " ") for k in newest) else n for n in needs)
        print(f"{shlex.quote(str(binary))} [{machine(binary)}] needs: {shown}")
        for p in problems:
            print(f"  MISSING: {p}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
