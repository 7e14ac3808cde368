"""Structure of ./Dockerfile and ./.dockerignore, parsed with BuildKit's own parser (the
`dockerfile` package wraps the official Go parser), so what is checked is what `docker build`
sees."""

from __future__ import annotations

import fnmatch
import re

import pytest

from deploy_helpers import REPO

dockerfile = pytest.importorskip("dockerfile", reason="pip install -r tests/deploy/requirements.txt")

BINARY = "/usr/local/bin/hookbridge"


@pytest.fixture(scope="module")
def instructions():
    return dockerfile.parse_file(str(REPO / "Dockerfile"))


@pytest.fixture(scope="module")
def stages(instructions):
    """[(from_instruction, [instructions of the stage])] in order."""
    out = []
    for ins in instructions:
        if ins.cmd == "FROM":
            out.append((ins, []))
        elif out:
            out[-1][1].append(ins)
    return out


def stage_name(from_ins) -> str | None:
    v = [x.lower() for x in from_ins.value]
    return from_ins.value[v.index("as") + 1] if "as" in v else None


def of(stage, cmd):
    return [i for i in stage[1] if i.cmd == cmd]


def test_multi_stage_with_named_stages(stages):
    assert len(stages) >= 2, "the image must be built in several stages"
    names = [stage_name(f) for f, _ in stages]
    assert all(names), f"every stage is named (FROM ... AS name): {names}"
    assert len(set(names)) == len(names)


def test_dependencies_are_built_in_their_own_cached_layer(stages):
    """Dependencies are compiled from the manifests alone before the sources are copied in
    (cargo-chef cook, or a dummy main), so a source change does not rebuild them."""
    builder = next(s for s in stages if any("cargo build" in i.value[0] for i in of(s, "RUN")))
    steps = builder[1]
    build_at = next(n for n, i in enumerate(steps) if i.cmd == "RUN" and "cargo build" in i.value[0])
    copy_all_at = next(n for n, i in enumerate(steps)
                       if i.cmd == "COPY" and not i.flags and i.value[0] in (".", "./", "src", "src/"))
    deps_at = next((n for n, i in enumerate(steps) if i.cmd == "RUN"
                    and ("cargo chef cook" in i.value[0] or "cargo build" in i.value[0])), None)
    assert deps_at is not None and deps_at < copy_all_at < build_at, \
        "a dependency build step must come before the sources are copied and the binary built"
    build = steps[build_at].value[0]
    assert "--release" in build and "--locked" in build, build


def test_runtime_stage_is_small_non_root_and_needs_no_shell(stages):
    runtime_from, steps = stages[-1]
    base = runtime_from.value[0]
    assert all(r.json for r in of(stages[-1], "RUN")), \
        "the runtime stage has no shell: RUN only in exec form (the binary's own smoke test)"
    # the base comes from an ARG default when parameterised
    if base.startswith("${"):
        arg = base.strip("${}").split(":")[0]
        base = next(i.value[0].split("=", 1)[1] for i in dockerfile.parse_file(str(REPO / "Dockerfile"))
                    if i.cmd == "ARG" and i.value[0].startswith(arg + "="))
    assert "distroless" in base or "slim" in base, f"small runtime base expected, got {base}"
    copies = of(stages[-1], "COPY")
    assert any(f.startswith("--from=") for c in copies for f in c.flags), \
        "the binary is copied from a build stage"
    assert any(c.value[-1] == BINARY for c in copies), f"binary installed at {BINARY}"


def test_runs_as_fixed_numeric_non_root_user(stages):
    users = of(stages[-1], "USER")
    assert users, "USER must be set in the runtime stage"
    user = users[-1].value[0]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER must be numeric (runAsNonRoot checks it): {user}"
    uid = int(user.split(":")[0])
    assert uid != 0
    assert uid == 65532, "the chart and compose file assume UID 65532"


def test_healthcheck_uses_the_binary(stages):
    hc = of(stages[-1], "HEALTHCHECK")
    assert len(hc) == 1
    assert hc[0].json, "HEALTHCHECK CMD in exec form (no shell in the image)"
    assert list(hc[0].value) == ["CMD", BINARY, "healthcheck"]


def test_runtime_image_is_smoke_tested_at_build_time(stages):
    """A shared library missing from the runtime image fails `docker build`, not a rollout."""
    runs = [list(r.value) for r in of(stages[-1], "RUN")]
    assert [BINARY, "--version"] in runs
    names = [i.cmd for i in stages[-1][1]]
    assert names.index("USER") < names.index("RUN"), "the smoke test runs as the non-root user"


def test_zlib_is_linked_statically(instructions):
    """The binary must not rely on the base carrying libz (distroless/cc-debian12 has none; debian13
    has it only as a dependency of OpenSSL): libz-sys builds zlib statically."""
    envs = " ".join(" ".join(i.value) for i in instructions if i.cmd == "ENV")
    assert "LIBZ_SYS_STATIC" in envs and "1" in envs


def test_entrypoint_and_ports(stages):
    ep = of(stages[-1], "ENTRYPOINT")
    assert ep and ep[-1].json and list(ep[-1].value) == [BINARY]
    cmd = of(stages[-1], "CMD")
    assert cmd and list(cmd[-1].value) == ["serve"]
    exposed = {p for e in of(stages[-1], "EXPOSE") for p in e.value}
    assert {"8080", "9090"} <= exposed


def test_oci_labels(stages):
    labels = {}
    for ins in of(stages[-1], "LABEL"):
        vals = list(ins.value)
        for k, v in zip(vals[::2], vals[1::2]):
            labels[k] = v.strip('"')
    for key in ("source", "version", "licenses", "title", "revision"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"missing OCI label {key}"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert "${VERSION}" in labels["org.opencontainers.image.version"], "version comes from a build arg"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Approximation of Docker's .dockerignore matching (last match wins, ! re-includes)."""
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        if p.startswith("**/"):
            hit = fnmatch.fnmatch(path, p[3:]) or fnmatch.fnmatch(path, p) or \
                any(fnmatch.fnmatch(part, p[3:]) for part in path.split("/"))
        else:
            hit = fnmatch.fnmatch(path, p) or path.startswith(p + "/")
        if hit:
            ignored = not neg
    return ignored


def test_dockerignore_keeps_sources_and_drops_the_rest():
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    for kept in ("Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs", "schemas/x.avsc", "tests/x.rs"):
        assert not _ignored(kept, patterns), f"{kept} is needed by cargo build but ignored"
    for dropped in ("target/release/hookbridge", ".git/HEAD", ".env", "deploy.env", "prod.env",
                    "config/.env", "config/local.env",
                    ".venv/bin/python", ".tools/bin/helm", "helm/hookbridge/values.yaml",
                    "tests/python/test_x.py"):
        assert _ignored(dropped, patterns), f"{dropped} must not be in the build context"


def test_binary_comes_from_the_builder_unless_a_prebuilt_one_is_asked_for(instructions, stages):
    """By default the image compiles the binary itself; BINARY_STAGE=prebuilt (scripts/images.sh,
    where no Rust builder image can be pulled) takes one built on the host instead. Either way the
    runtime stage is the same."""
    args = dict(i.value[0].split("=", 1) for i in instructions if i.cmd == "ARG" and "=" in i.value[0])
    assert args.get("BINARY_STAGE") == "builder"
    by_name = {stage_name(f): (f, steps) for f, steps in stages}
    pre_from, pre_steps = by_name["prebuilt"]
    assert pre_from.value[0] == "scratch", "the prebuilt stage holds nothing but the binary"
    copies = [i for i in pre_steps if i.cmd == "COPY"]
    assert len(copies) == 1 and "hookbridge*" in copies[0].value and copies[0].value[-1] == "/out/"
    assert by_name["binary"][0].value[0] == "${BINARY_STAGE}"
    assert any("--from=binary" in c.flags for c in of(stages[-1], "COPY")), \
        "the runtime stage copies the binary from the selected stage"
    assert stage_name(stages[-1][0]) == "runtime"
