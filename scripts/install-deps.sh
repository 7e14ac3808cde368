#!/usr/bin/env bash
# Installs the system packages a fresh machine may lack for building and testing hookbridge.
# Idempotent and quick when everything is present. Rust (cargo, rustfmt, clippy), Java 17+,
# Maven, Python 3.11 and Go are expected from the machine image.
set -euo pipefail

need=()
for cmd in curl make gcc g++ perl pkg-config promtool; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd")
done
pkgs=()
for cmd in "${need[@]}"; do
  case "$cmd" in
    gcc|g++) pkgs+=(build-essential) ;;
    # promtool checks the Helm chart's alert rules (scripts/check-deploy.sh); Debian ships it in
    # the prometheus package, whose server is not wanted (see below)
    promtool) pkgs+=(prometheus) ;;
    *) pkgs+=("$cmd") ;;
  esac
done
# librdkafka is built with TLS (SASL_SSL, SCRAM) against the system OpenSSL.
pkg-config --exists openssl 2>/dev/null || pkgs+=(libssl-dev)
pkg-config --exists zlib 2>/dev/null || pkgs+=(zlib1g-dev)
if ((${#pkgs[@]})); then
  echo "[deps] installing: ${pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
  # the prometheus package's server would listen on 9090, the gateway's admin port: on a machine
  # whose init system started it, stop and disable it (only promtool is used)
  if [[ " ${pkgs[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 \
      && systemctl is-enabled --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

missing=()
for tool in cargo java mvn python3 go; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
cargo fmt --version >/dev/null 2>&1 || missing+=("rustfmt (rustup component add rustfmt)")
cargo clippy --version >/dev/null 2>&1 || missing+=("clippy (rustup component add clippy)")
if ((${#missing[@]})); then
  echo "[deps] missing from this machine: ${missing[*]}" >&2
  exit 1
fi
echo "[deps] ok: $(cargo --version), $(java -version 2>&1 | head -1), $(python3 --version), $(go version | cut -d' ' -f3)"
