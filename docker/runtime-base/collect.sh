#!/usr/bin/env bash
# Run in the Debian base (stage "collect" of ./Dockerfile): copies into $1 the files of the
# packages in $PACKAGES and of the libraries they depend on (Depends and Pre-Depends, first
# alternative, recursively), leaving out packages that would bring a shell, a package manager or
# other programs (EXCLUDE), then the generated CA bundle, the users and /tmp.
set -euo pipefail
R="${1:?usage: collect.sh ROOTFS}"
CTX="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EXCLUDE=" debconf debconf-2.0 perl-base dpkg coreutils bash dash sensible-utils base-passwd init-system-helpers usrmerge usr-is-merged libc-bin awk mawk gawk "

declare -A want=()
read -r -a queue <<<"$PACKAGES"
while [ "${#queue[@]}" -gt 0 ]; do
  p="${queue[0]}"; queue=("${queue[@]:1}")
  [ -n "${want[$p]:-}" ] && continue
  [[ "$EXCLUDE" == *" $p "* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || { echo "package $p is not installed in the base image" >&2; exit 1; }
  want[$p]=1
  deps="$(dpkg-query -W -f='${Depends},${Pre-Depends}' "$p")"
  IFS=',' read -r -a items <<<"$deps"
  for d in "${items[@]}"; do
    d="${d%%|*}"; d="${d%%(*}"; d="${d%%:*}"; d="${d// /}"
    [ -n "$d" ] && queue+=("$d")
  done
done
printf 'packages: %s\n' "$(printf '%s\n' "${!want[@]}" | sort | tr '\n' ' ')"

mkdir -p "$R"/usr/bin "$R"/usr/sbin "$R"/usr/lib "$R"/usr/lib64 "$R"/etc/ssl/certs "$R"/tmp \
         "$R"/home/nonroot "$R"/var/lib/dpkg/status.d
for l in bin sbin lib lib64; do if [ -L "/$l" ]; then cp -a "/$l" "$R/"; fi; done
for p in "${!want[@]}"; do dpkg-query -s "$p" >"$R/var/lib/dpkg/status.d/$p"; done
for p in "${!want[@]}"; do dpkg-query -L "$p"; done | sort -u | while read -r f; do
  case "$f" in /usr/share/doc/*|/usr/share/man/*|/usr/share/lintian/*|/usr/share/bug/*|/etc/update-motd.d*) continue ;; esac
  if [ -L "$f" ] || [ -f "$f" ]; then cp -a --parents "$f" "$R/"; fi
done
cp -a /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/"
# programs (update-ca-certificates, tzconfig, ...) have nothing to run them without a shell
rm -rf "${R:?}"/usr/sbin/* "${R:?}"/usr/bin/* "${R:?}"/etc/ca-certificates.conf
install -m 0644 "$CTX/passwd" "$R/etc/passwd"
install -m 0644 "$CTX/group" "$R/etc/group"
install -m 0644 "$CTX/nsswitch.conf" "$R/etc/nsswitch.conf"
chmod 1777 "$R/tmp"
chown 65532:65532 "$R/home/nonroot"; chmod 0700 "$R/home/nonroot"
if find "$R" \( -type f -o -type l \) \( -name sh -o -name bash -o -name dash -o -name busybox \) | grep .; then
  echo "a shell slipped in" >&2; exit 1
fi
