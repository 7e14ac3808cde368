#!/usr/bin/env bash
# Local images for everything the tests and docker-compose.yml use, built on this machine where no
# image registry can be reached: a Debian base made with debootstrap, the Kafka and Apicurio
# Registry jars the local stack fetches from Maven Central, and the project's own Dockerfile.
#
#   bash scripts/images.sh [all]          build (or keep) every image below
#   bash scripts/images.sh base|kafka|registry|runtime-base|hookbridge   one image (and what it needs)
#   bash scripts/images.sh list           the images, their keys and sizes
#   bash scripts/images.sh env            print the variables that point tests and compose at them
#
# Images (NAME:TAG, what it is made of):
#   hookbridge-local/debian-jre:<suite>            debootstrap --variant=minbase <suite> + OpenJDK 21 JRE, curl
#                                                  and runtime-base's packages (imported as one layer)
#   hookbridge-local/kafka:<KAFKA_VERSION>         docker/kafka: Kafka jars; apache/kafka's environment interface
#   hookbridge-local/apicurio-registry:<APICURIO_VERSION>  docker/apicurio-registry: the Quarkus app
#   hookbridge-local/runtime-base:<suite>          docker/runtime-base: distroless/cc's packages, uid 65532, no shell
#   hookbridge:dev                                 ./Dockerfile's runtime stage on runtime-base, with the
#                                                  binary built on the host (stage "prebuilt")
#
# Cached: every image carries the label org.hookbridge.local.key, a hash of what it is built from
# (versions, the files under docker/, the Maven download folder's name, the binary's hash, the
# base image's id); an image whose key matches is kept, so a second run with nothing changed takes
# seconds. IMAGES_FORCE=1 rebuilds regardless.
#
# Engine: the podman engine of scripts/container-engine.sh (builds with `podman build`, no API
# needed), or the Docker engine the machine already has (`docker build`, BuildKit needed for
# RUN --mount). Needs root for debootstrap (the first base only).
#
# Environment (defaults in brackets): DEBIAN_SUITE [trixie], DEBIAN_MIRROR [http://deb.debian.org/debian],
# KAFKA_VERSION / APICURIO_VERSION [from scripts/stack/pom.xml], HOOKBRIDGE_PROFILE [release;
# debug puts the debug build in the image, free where `cargo test` already made it],
# HOOKBRIDGE_BINARY [target/<profile>/hookbridge], HOOKBRIDGE_STATIC_ZLIB [0; 1 builds the binary
# with zlib linked in, as the Dockerfile's builder does, in .tools/images/target], HOOKBRIDGE_IMAGE
# [hookbridge], HOOKBRIDGE_VERSION [dev], IMAGES_FORCE [0].
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
POM="$ROOT/scripts/stack/pom.xml"
WORK="$ROOT/.tools/images"
LOG_DIR="$WORK/logs"
KEY_LABEL="org.hookbridge.local.key"

pom_prop() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$POM" | head -n1; }
KAFKA_VERSION="${KAFKA_VERSION:-$(pom_prop kafka.version)}"
APICURIO_VERSION="${APICURIO_VERSION:-$(pom_prop apicurio.version)}"
POM_STAMP="$(sha256sum <"$POM" | cut -c1-10)"
DEBIAN_SUITE="${DEBIAN_SUITE:-trixie}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# the JRE and curl for the Kafka and registry images; the rest for runtime-base (distroless/cc's list)
BASE_PACKAGES="openjdk-21-jre-headless,ca-certificates,curl,tzdata,tzdata-legacy,netbase,media-types,libgomp1"
HOOKBRIDGE_PROFILE="${HOOKBRIDGE_PROFILE:-release}"
case "$HOOKBRIDGE_PROFILE" in release|debug) ;; *) echo "HOOKBRIDGE_PROFILE must be release or debug" >&2; exit 2 ;; esac
HOOKBRIDGE_BINARY="${HOOKBRIDGE_BINARY:-$ROOT/target/$HOOKBRIDGE_PROFILE/hookbridge}"
HOOKBRIDGE_STATIC_ZLIB="${HOOKBRIDGE_STATIC_ZLIB:-0}"
HOOKBRIDGE_IMAGE="${HOOKBRIDGE_IMAGE:-hookbridge}"
HOOKBRIDGE_VERSION="${HOOKBRIDGE_VERSION:-dev}"
IMAGES_FORCE="${IMAGES_FORCE:-0}"

BASE_IMAGE="hookbridge-local/debian-jre:$DEBIAN_SUITE"
KAFKA_IMAGE="hookbridge-local/kafka:$KAFKA_VERSION"
REGISTRY_IMAGE="hookbridge-local/apicurio-registry:$APICURIO_VERSION"
RUNTIME_BASE_IMAGE="hookbridge-local/runtime-base:$DEBIAN_SUITE"
APP_IMAGE="$HOOKBRIDGE_IMAGE:$HOOKBRIDGE_VERSION"

say() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }
mkdir -p "$WORK" "$LOG_DIR"

# ---------------------------------------------------------------------------------------------
# Engine

eval "$(bash "$ROOT/scripts/container-engine.sh" env 2>/dev/null)"
if [ -n "${CONTAINERS_CONF:-}" ]; then
  ENGINE=podman
  [ -S "${DOCKER_HOST#unix://}" ] || [ -f "$CONTAINERS_CONF" ] \
    || die "no container engine: run bash scripts/container-engine.sh up"
  command -v podman >/dev/null || die "podman is not installed: run bash scripts/container-engine.sh up"
else
  ENGINE=docker
fi
E() { "$ENGINE" "$@"; }

image_id() { E image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
image_key() { E image inspect --format "{{index .Config.Labels \"$KEY_LABEL\"}}" "$1" 2>/dev/null || true; }
# bump when the way images are built changes (build flags, format)
RECIPE=2
up_to_date() { # up_to_date IMAGE KEY
  [ "$IMAGES_FORCE" != 1 ] && [ "$(image_key "$1")" = "$2" ]
}
hash_files() { # hash_files PATH... -> one hash of the names and contents
  find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

build() { # build IMAGE KEY CONTEXT DOCKERFILE [build args...]
  local image="$1" key="$2" ctx="$3" file="$4" log t0=$SECONDS
  shift 4
  log="$LOG_DIR/$(printf '%s' "$image" | tr '/:' '__').log"
  say "building $image (log $log)"
  local args=(build -f "$file" -t "$image" --label "$KEY_LABEL=$key" "$@")
  if [ "$ENGINE" = podman ]; then
    # Docker's image format (OCI's has no HEALTHCHECK), one committed image per build (each layer
    # is a full copy under vfs), no network in RUN, never a registry
    args+=(--format=docker --layers=false --network=none --pull=never)
  fi
  if ! E "${args[@]}" "$ctx" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "building $image failed (full log $log)"
  fi
  E image prune -f >/dev/null 2>&1 || true
  say "built $image in $((SECONDS - t0)) s ($(size_of "$image"))"
}

size_of() { # human size of an image
  local b
  b="$(E image inspect --format '{{.Size}}' "$1" 2>/dev/null || echo 0)"
  awk -v b="$b" 'BEGIN { printf "%.0f MB", b / 1000000 }'
}

# ---------------------------------------------------------------------------------------------
# hookbridge-local/debian-jre:<suite>: debootstrap, imported as one layer

BASE_DONE=0
build_base() {
  [ "$BASE_DONE" = 1 ] && return 0
  BASE_DONE=1
  local key t0=$SECONDS
  key="$(printf '%s|%s|%s|%s' "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$BASE_PACKAGES" "base-v1" | sha256sum | cut -c1-16)"
  if up_to_date "$BASE_IMAGE" "$key"; then say "$BASE_IMAGE is up to date"; return 0; fi
  command -v debootstrap >/dev/null || die "debootstrap is missing (bash scripts/container-engine.sh up installs it)"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  local dir="$WORK/rootfs-$DEBIAN_SUITE" log="$LOG_DIR/debootstrap-$DEBIAN_SUITE.log"
  rm -rf "$dir"
  say "debootstrap --variant=minbase $DEBIAN_SUITE + $BASE_PACKAGES (log $log)"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "debootstrap failed (log $log)"
  fi
  # the package caches and docs are not needed at run time
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* \
         "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/log/* "$dir"/tmp/* 2>/dev/null || true
  printf 'nameserver 127.0.0.1\n' >"$dir/etc/resolv.conf"
  say "importing $BASE_IMAGE"
  tar -C "$dir" --numeric-owner -cf - . | E import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change "ENV JAVA_HOME=/usr/lib/jvm/java-21-openjdk-amd64" \
    --change "LABEL $KEY_LABEL=$key" \
    --change 'CMD ["/bin/bash"]' \
    - "$BASE_IMAGE" >"$LOG_DIR/import-base.log" 2>&1 \
    || { cat "$LOG_DIR/import-base.log" >&2; die "import of $BASE_IMAGE failed"; }
  rm -rf "$dir"
  say "built $BASE_IMAGE in $((SECONDS - t0)) s ($(size_of "$BASE_IMAGE"))"
}

# ---------------------------------------------------------------------------------------------
# Maven Central downloads: the local stack's folders when they are complete, else our own

stack_download() { # stack_download -> sets KAFKA_LIB and REGISTRY_HOME
  local stack_k="$ROOT/.stack/lib/kafka-$KAFKA_VERSION-$POM_STAMP"
  local stack_r="$ROOT/.stack/lib/apicurio-registry-$APICURIO_VERSION-$POM_STAMP"
  if [ -f "$stack_k/.complete" ] && [ -f "$stack_r/.complete" ]; then
    KAFKA_LIB="$stack_k"; REGISTRY_HOME="$stack_r"; return 0
  fi
  KAFKA_LIB="$WORK/maven/kafka-$KAFKA_VERSION-$POM_STAMP"
  REGISTRY_HOME="$WORK/maven/apicurio-registry-$APICURIO_VERSION-$POM_STAMP"
  [ -f "$KAFKA_LIB/.complete" ] && [ -f "$REGISTRY_HOME/.complete" ] && return 0
  command -v mvn >/dev/null || die "mvn (Maven) is needed to fetch Kafka and Apicurio Registry from Maven Central"
  local tk="$KAFKA_LIB.tmp" tr="$REGISTRY_HOME.tmp" log="$LOG_DIR/maven.log" t0=$SECONDS
  rm -rf "$tk" "$tr"; mkdir -p "$WORK/maven"
  say "fetching Kafka $KAFKA_VERSION and Apicurio Registry $APICURIO_VERSION from Maven Central (log $log)"
  mvn -B -ntp -Dstyle.color=never -f "$POM" dependency:copy-dependencies dependency:unpack@registry \
    -Dkafka.version="$KAFKA_VERSION" -Dapicurio.version="$APICURIO_VERSION" \
    -Dstack.kafka.dir="$tk" -Dstack.registry.dir="$tr" >"$log" 2>&1 \
    || { tail -n 40 "$log" >&2; die "Maven could not fetch the jars (log $log)"; }
  [ -f "$tr/quarkus-run.jar" ] || die "unpacked Apicurio Registry has no quarkus-run.jar (see $log)"
  touch "$tk/.complete" "$tr/.complete"
  rm -rf "$KAFKA_LIB" "$REGISTRY_HOME"
  mv "$tk" "$KAFKA_LIB"; mv "$tr" "$REGISTRY_HOME"
  say "fetched in $((SECONDS - t0)) s"
}

fresh_ctx() { # fresh_ctx NAME -> path of an empty build context folder
  local ctx="$WORK/ctx/$1"
  rm -rf "$ctx"; mkdir -p "$ctx"
  printf '%s' "$ctx"
}

copy_tree() { # copy_tree SRC DST: hard links where the file system allows (no copy of the jars)
  cp -al "$1" "$2" 2>/dev/null || cp -a "$1" "$2"
}

# ---------------------------------------------------------------------------------------------

build_kafka() {
  build_base
  stack_download
  local key
  key="$(printf '%s|%s|%s|%s|%s' "$RECIPE" "$KAFKA_VERSION" "$(basename "$KAFKA_LIB")" "$(hash_files docker/kafka)" \
         "$(image_id "$BASE_IMAGE")" | sha256sum | cut -c1-16)"
  if up_to_date "$KAFKA_IMAGE" "$key"; then say "$KAFKA_IMAGE is up to date"; return 0; fi
  local ctx name class
  ctx="$(fresh_ctx kafka)"
  cp -a docker/kafka/. "$ctx/"
  mkdir -p "$ctx/libs"
  ln "$KAFKA_LIB"/*.jar "$ctx/libs/" 2>/dev/null || cp "$KAFKA_LIB"/*.jar "$ctx/libs/"
  while read -r name class; do
    case "$name" in ''|'#'*) continue ;; esac
    printf '#!/usr/bin/env bash\n# %s: %s (generated from docker/kafka/tools.txt)\nexec /opt/kafka/bin/kafka-run-class.sh %s "$@"\n' \
      "$name" "$class" "$class" >"$ctx/bin/$name"
  done <docker/kafka/tools.txt
  build "$KAFKA_IMAGE" "$key" "$ctx" "$ctx/Dockerfile" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg KAFKA_VERSION="$KAFKA_VERSION"
}

build_registry() {
  build_base
  stack_download
  local key
  key="$(printf '%s|%s|%s|%s|%s' "$RECIPE" "$APICURIO_VERSION" "$(basename "$REGISTRY_HOME")" \
         "$(hash_files docker/apicurio-registry)" "$(image_id "$BASE_IMAGE")" | sha256sum | cut -c1-16)"
  if up_to_date "$REGISTRY_IMAGE" "$key"; then say "$REGISTRY_IMAGE is up to date"; return 0; fi
  local ctx
  ctx="$(fresh_ctx apicurio-registry)"
  cp -a docker/apicurio-registry/. "$ctx/"
  copy_tree "$REGISTRY_HOME" "$ctx/app"
  rm -rf "$ctx/app/.maven-markers" "$ctx/app/.complete"
  build "$REGISTRY_IMAGE" "$key" "$ctx" "$ctx/Dockerfile" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg APICURIO_VERSION="$APICURIO_VERSION"
}

build_runtime_base() {
  build_base
  local key
  key="$(printf '%s|%s|%s|%s' "$RECIPE" "$DEBIAN_SUITE" "$(hash_files docker/runtime-base)" "$(image_id "$BASE_IMAGE")" \
         | sha256sum | cut -c1-16)"
  if up_to_date "$RUNTIME_BASE_IMAGE" "$key"; then say "$RUNTIME_BASE_IMAGE is up to date"; return 0; fi
  local ctx
  ctx="$(fresh_ctx runtime-base)"
  cp -a docker/runtime-base/. "$ctx/"
  build "$RUNTIME_BASE_IMAGE" "$key" "$ctx" "$ctx/Dockerfile" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg DEBIAN_SUITE="$DEBIAN_SUITE"
}

needs_libz() { readelf -d "$1" 2>/dev/null | grep -q 'NEEDED.*\[libz\.so'; }

# Sets BINARY: the binary to put in the image. By default the project's own build,
# target/<profile>/hookbridge (built with cargo when missing; cargo waits for a build already
# running). It links zlib dynamically; the runtime image has libz.so.1 because trixie's OpenSSL
# needs it (as in distroless/cc-debian13). The Dockerfile's builder links zlib statically
# (LIBZ_SYS_STATIC=1); HOOKBRIDGE_STATIC_ZLIB=1 reproduces that, building in a target folder of
# its own, .tools/images/target (seeded once from target/<profile>, so only libz-sys,
# rdkafka-sys, rdkafka and hookbridge are compiled again), which never disturbs the project's
# own builds.
ensure_binary() {
  BINARY="$HOOKBRIDGE_BINARY"
  local flag=() log t0=$SECONDS
  [ "$HOOKBRIDGE_PROFILE" = release ] && flag=(--release)
  if [ "$HOOKBRIDGE_STATIC_ZLIB" != 1 ]; then
    if [ ! -x "$BINARY" ]; then
      [ "$BINARY" = "$ROOT/target/$HOOKBRIDGE_PROFILE/hookbridge" ] || die "HOOKBRIDGE_BINARY=$BINARY does not exist"
      log="$LOG_DIR/cargo-$HOOKBRIDGE_PROFILE.log"
      say "no $BINARY: cargo build --locked ${flag[*]} --bin hookbridge (log $log)"
      cargo build --locked "${flag[@]}" --bin hookbridge >"$log" 2>&1 \
        || { tail -n 40 "$log" >&2; die "cargo build failed (log $log)"; }
      say "built in $((SECONDS - t0)) s"
    fi
    return 0
  fi
  if [ -x "$BINARY" ] && ! needs_libz "$BINARY"; then return 0; fi
  if [ "$BINARY" != "$ROOT/target/$HOOKBRIDGE_PROFILE/hookbridge" ]; then
    die "HOOKBRIDGE_BINARY=$BINARY needs libz.so.1 and HOOKBRIDGE_STATIC_ZLIB=1 asks for a static one"
  fi
  local target="$WORK/target"
  log="$LOG_DIR/cargo-static-$HOOKBRIDGE_PROFILE.log"
  if [ ! -d "$target/$HOOKBRIDGE_PROFILE" ] && [ -d "$ROOT/target/$HOOKBRIDGE_PROFILE/deps" ]; then
    say "seeding $target/$HOOKBRIDGE_PROFILE from target/$HOOKBRIDGE_PROFILE"
    mkdir -p "$target"
    cp -a "$ROOT/target/$HOOKBRIDGE_PROFILE" "$target/"
  fi
  say "LIBZ_SYS_STATIC=1 cargo build --locked ${flag[*]} --bin hookbridge into $target (log $log)"
  LIBZ_SYS_STATIC=1 CARGO_TARGET_DIR="$target" cargo build --locked "${flag[@]}" --bin hookbridge >"$log" 2>&1 \
    || { tail -n 40 "$log" >&2; die "cargo build failed (log $log)"; }
  BINARY="$target/$HOOKBRIDGE_PROFILE/hookbridge"
  needs_libz "$BINARY" && die "$BINARY still needs libz.so.1 (see $log)"
  say "$HOOKBRIDGE_PROFILE binary with zlib linked in ready in $((SECONDS - t0)) s: $BINARY"
}

build_hookbridge() {
  build_runtime_base
  ensure_binary
  local key bin_hash
  bin_hash="$(sha256sum "$BINARY" | cut -c1-16)"
  key="$(printf '%s|%s|%s|%s' "$RECIPE" "$bin_hash" "$(sha256sum Dockerfile | cut -c1-16)" "$(image_id "$RUNTIME_BASE_IMAGE")" \
         | sha256sum | cut -c1-16)"
  if up_to_date "$APP_IMAGE" "$key"; then say "$APP_IMAGE is up to date"; return 0; fi
  # The build context of stage "prebuilt" (see ./Dockerfile): the binary and Cargo.toml, nothing else.
  local ctx
  ctx="$(fresh_ctx hookbridge)"
  ln "$BINARY" "$ctx/hookbridge" 2>/dev/null || cp "$BINARY" "$ctx/hookbridge"
  cp Cargo.toml "$ctx/"
  build "$APP_IMAGE" "$key" "$ctx" "$ROOT/Dockerfile" --target runtime \
    --build-arg RUNTIME_IMAGE="$RUNTIME_BASE_IMAGE" --build-arg BINARY_STAGE=prebuilt \
    --build-arg VERSION="$(git describe --always --dirty 2>/dev/null || echo "$HOOKBRIDGE_VERSION")" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --build-arg CREATED="$(date -u +%FT%TZ)"
}

cmd_list() {
  local i
  printf '%-45s %-18s %s\n' IMAGE KEY SIZE
  for i in "$BASE_IMAGE" "$KAFKA_IMAGE" "$REGISTRY_IMAGE" "$RUNTIME_BASE_IMAGE" "$APP_IMAGE"; do
    if [ -n "$(image_id "$i")" ]; then printf '%-45s %-18s %s\n' "$i" "$(image_key "$i")" "$(size_of "$i")"
    else printf '%-45s %s\n' "$i" "(not built)"; fi
  done
}

cmd_env() {
  cat <<EOF
export HOOKBRIDGE_TEST_KAFKA_IMAGE=$KAFKA_IMAGE
export HOOKBRIDGE_TEST_REGISTRY_IMAGE=$REGISTRY_IMAGE
export KAFKA_IMAGE=${KAFKA_IMAGE%:*} KAFKA_VERSION=$KAFKA_VERSION
export REGISTRY_IMAGE=${REGISTRY_IMAGE%:*} APICURIO_VERSION=$APICURIO_VERSION
export HOOKBRIDGE_IMAGE=$HOOKBRIDGE_IMAGE HOOKBRIDGE_VERSION=$HOOKBRIDGE_VERSION
EOF
}

t_start=$SECONDS
case "${1:-all}" in
  all) build_kafka; build_registry; build_hookbridge; cmd_list; say "all images ready in $((SECONDS - t_start)) s" ;;
  base) build_base ;;
  kafka) build_kafka ;;
  registry) build_registry ;;
  runtime-base) build_runtime_base ;;
  hookbridge) build_hookbridge ;;
  list) cmd_list ;;
  env) cmd_env ;;
  *) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
