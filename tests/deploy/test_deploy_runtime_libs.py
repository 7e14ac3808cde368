"""The runtime image's contents, checked without an image (tests/deploy/runtime_libs.py): the
documented contents of gcr.io/distroless/cc-debian13 (docs/containers.md) against what the
binary links against, and against docker/runtime-base."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import runtime_libs as rl
from deploy_helpers import REPO, require_tools

# distroless's cc-debian13, from GoogleContainerTools/distroless at commit cd080764 (2026-08-21):
# static/config.bzl STATIC_PACKAGES, the CA bundle of static/static.bzl, base/config.bzl
# BASE_PACKAGES and cc/config.bzl CC_PACKAGES, each for "debian13"
DISTROLESS_CC_DEBIAN13 = {
    "static": {"base-files", "netbase", "tzdata", "tzdata-legacy", "media-types"},
    "static (generated bundle)": {"ca-certificates"},
    "base": {"libc6", "libssl3t64", "libzstd1", "zlib1g"},
    "cc": {"libgomp1", "libstdc++6", "libgcc-s1", "gcc-14-base"},
}


@pytest.fixture(scope="module")
def tables():
    return rl.documented()


def test_the_package_table_is_distroless_cc_debian13(tables):
    _, packages = tables
    by_layer: dict[str, set[str]] = {}
    for p in packages.values():
        by_layer.setdefault(p.layer, set()).add(p.name)
    assert by_layer == DISTROLESS_CC_DEBIAN13


def test_every_documented_library_belongs_to_a_documented_package(tables):
    libraries, packages = tables
    assert {"libc.so.6", "libssl.so.3", "libcrypto.so.3", "libgcc_s.so.1", "libz.so.1"} <= set(libraries)
    for lib in libraries.values():
        assert lib.package in packages, lib


def test_runtime_base_has_every_package_the_table_says_it_has(tables):
    _, packages = tables
    base = rl.runtime_base_packages()
    for p in packages.values():
        if p.runtime_base == "named":
            assert p.name in base, f"{p.name} is documented as named in docker/runtime-base"
        else:
            parents = re.findall(r"`([^`]+)`", p.runtime_base)
            assert p.runtime_base.startswith("dependency of") and parents, p
            assert set(parents) <= base, p


def test_the_runtime_base_comment_in_images_sh_names_the_same_packages():
    """scripts/images.sh's BASE_PACKAGES installs, in the debootstrap base, what runtime-base
    copies from (collect.sh fails on a package that is not installed there)."""
    text = (REPO / "scripts" / "images.sh").read_text()
    base_packages = set(re.search(r'^BASE_PACKAGES="([^"]+)"', text, re.M).group(1).split(","))
    # the others (libc6, libgcc-s1, libstdc++6, libssl3t64, base-files) come with debootstrap's
    # minbase and the JRE and curl installed there
    for pkg in ("ca-certificates", "tzdata", "tzdata-legacy", "netbase", "media-types", "libgomp1"):
        assert pkg in base_packages
        assert pkg in rl.runtime_base_packages()


def binaries() -> list[Path]:
    if os.environ.get("HOOKBRIDGE_BINARY"):
        return [Path(b) for b in os.environ["HOOKBRIDGE_BINARY"].split()]
    return [b for b in (REPO / "target" / "release" / "hookbridge", REPO / "target" / "debug" / "hookbridge")
            if b.is_file()]


def test_the_built_binaries_need_only_what_the_base_provides():
    found = binaries()
    if not found:
        if require_tools():
            pytest.fail("no target/{release,debug}/hookbridge: scripts/check-deploy.sh builds one")
        pytest.skip("no hookbridge binary built")
    for binary in found:
        problems, needs, versions = rl.check_binary(binary)
        assert needs, f"{binary}: no NEEDED entries read"
        assert "libc.so.6" in needs and versions, f"{binary}: readelf output not understood"
        assert problems == [], f"{binary}: {problems}"


# ------------------------------------------------------------------------------------------
# the check fails when it should


def test_a_library_the_base_lacks_is_reported(tables, tmp_path):
    """A real ELF linked against a library of our own: NEEDED names it, and the check fails."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        if require_tools():
            pytest.fail("no C compiler (build-essential) to build the test binary")
        pytest.skip("no C compiler")
    (tmp_path / "extra.c").write_text("int extra(void) { return 1; }\n")
    (tmp_path / "main.c").write_text("int extra(void);\nint main(void) { return extra() - 1; }\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", "libhbextra.so.1", "-Wl,-soname,libhbextra.so.1",
                    "extra.c"], cwd=tmp_path, check=True)
    subprocess.run([cc, "-o", "prog", "main.c", "-L.", "-l:libhbextra.so.1"], cwd=tmp_path, check=True)
    needs = rl.needed(tmp_path / "prog")
    assert "libhbextra.so.1" in needs and "libc.so.6" in needs
    libraries, packages = tables
    problems = rl.check(needs, rl.version_needs(tmp_path / "prog"), libraries, packages,
                        rl.runtime_base_packages())
    assert problems == ["libhbextra.so.1: not in gcr.io/distroless/cc-debian13 (docs/containers.md, "
                        "runtime-libraries)"]


@pytest.mark.parametrize("need,ok", [
    (("libc.so.6", "GLIBC_2.34"), True),
    (("libc.so.6", "GLIBC_2.41"), True),
    (("libc.so.6", "GLIBC_2.42"), False),  # a binary built on a newer glibc than trixie's
    (("libc.so.6", "GLIBC_ABI_DT_RELR"), True),
    (("libc.so.6", "GLIBC_ABI_NOPE"), False),
    (("ld-linux-x86-64.so.2", "GLIBC_2.36"), False),  # the loader defines up to GLIBC_2.35
    (("libssl.so.3", "OPENSSL_3.0.0"), True),
    (("libssl.so.3", "OPENSSL_3.6.0"), False),
    (("libgcc_s.so.1", "GCC_4.2.0"), True),
    (("libgcc_s.so.1", "GCC_15.0.0"), False),
    (("libz.so.1", "ZLIB_1.2.12"), True),
    (("libz.so.1", "ZLIB_1.3.2"), False),
    (("libzstd.so.1", "ZSTD_1.0"), False),
])
def test_symbol_versions(tables, need, ok):
    libraries, packages = tables
    problems = rl.check([need[0]], [need], libraries, packages, rl.runtime_base_packages())
    assert (problems == []) == ok, problems


def test_a_package_runtime_base_lacks_is_reported(tables):
    libraries, packages = tables
    base = rl.runtime_base_packages() - {"libssl3t64"}
    problems = rl.check(["libssl.so.3", "libz.so.1"], [], libraries, packages, base)
    assert problems == [
        "libssl.so.3: libssl3t64 is documented as named in runtime-base, but "
        "docker/runtime-base/Dockerfile's PACKAGES lacks it",
        "libz.so.1: zlib1g comes into runtime-base with libssl3t64, which PACKAGES does not name",
    ]


def test_the_tables_are_read_from_the_doc_and_a_removed_row_counts(tmp_path):
    text = rl.DOC.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `libgcc_s.so.1`"))
    libraries, packages = rl.documented(text.replace(row + "\n", ""))
    problems = rl.check(["libgcc_s.so.1"], [], libraries, packages, rl.runtime_base_packages())
    assert problems and "libgcc_s.so.1: not in" in problems[0]
