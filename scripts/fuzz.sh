#!/usr/bin/env bash
# Coverage-guided fuzzing of hookbridge (fuzz/, cargo fuzz on the nightly toolchain).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Installs cargo-fuzz into .tools/cargo-fuzz if it is missing, builds every target, then runs
# each for SECONDS_PER_TARGET (default 20) from the committed seeds in fuzz/corpus/<target>
# plus the working corpus in fuzz/work/<target> (git-ignored; it grows run after run).
# Exits non-zero on the first crash, leak, timeout or out-of-memory; the input that caused it
# is in fuzz/artifacts/<target>/ and the command to reproduce it is printed.
#
# Environment: FUZZ_SANITIZER (none|address, default none: the crate forbids unsafe code, and
# without ASan builds and runs are about twice as fast), FUZZ_TOOLCHAIN (default nightly),
# CARGO_FUZZ_ROOT (where cargo-fuzz is installed, default .tools/cargo-fuzz; a directory outside
# the clone saves its 2-3 minute build on every fresh clone).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

seconds=${1:-20}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(verify parse avro config providers)
fi
sanitizer=${FUZZ_SANITIZER:-none}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
cargo_fuzz_version=0.13.2

log() { echo "[fuzz] $*"; }

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
  echo "[fuzz] the $toolchain toolchain is missing (rustup toolchain install $toolchain)" >&2
  exit 1
fi

tools=${CARGO_FUZZ_ROOT:-$root/.tools/cargo-fuzz}
export PATH=$tools/bin:$PATH
if ! cargo-fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  log "installing cargo-fuzz $cargo_fuzz_version into $tools"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --root "$tools"
fi

started=$(date +%s)
log "building ${targets[*]} (sanitizer: $sanitizer)"
for target in "${targets[@]}"; do
  cargo "+$toolchain" fuzz build --sanitizer "$sanitizer" "$target"
done
log "built in $(($(date +%s) - started))s"

# Seed files are in fuzz/corpus; libFuzzer writes what it finds to the first directory.
status=0
for target in "${targets[@]}"; do
  work=$root/fuzz/work/$target
  seeds=$root/fuzz/corpus/$target
  mkdir -p "$work" "$seeds" "fuzz/artifacts/$target"
  marker=fuzz/artifacts/$target/.started
  touch "$marker"
  log "$target: ${seconds}s"
  set +e
  cargo "+$toolchain" fuzz run --sanitizer "$sanitizer" "$target" "$work" "$seeds" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    tee "fuzz/artifacts/$target/last-run.log" |
    awk '/^#[0-9]+[ \t]+(INITED|DONE)/ || /^stat::/ || /Test unit written/ || /^==[0-9]+== ERROR/ {
           print; fflush(); next }
         /panicked at/ { shown = 0; p = 1 }
         p && /^(stack backtrace|note: |==[0-9]+==)/ { p = 0 }
         p && shown++ < 40 { print; fflush() }'
  rc=${PIPESTATUS[0]}
  set -e
  if ((rc != 0)); then
    log "$target FAILED (exit $rc); full log: fuzz/artifacts/$target/last-run.log"
    find "fuzz/artifacts/$target" -newer "$marker" -type f \
      \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) |
      while read -r a; do
        log "  reproduce: cargo +$toolchain fuzz run --sanitizer $sanitizer $target $a"
        log "  minimise:  cargo +$toolchain fuzz tmin --sanitizer $sanitizer $target $a"
      done
    status=1
  fi
done
log "finished in $(($(date +%s) - started))s with status $status"
exit $status
