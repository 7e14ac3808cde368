#!/usr/bin/env bash
# A local single-node Kubernetes for testing the Helm chart (issue 12, docs/deploy.md): the
# control plane, kubelet and kube-proxy built from source through the Go module proxy, CoreDNS
# built the same way, containerd, etcd and the CNI plugins from Debian's packages (unpacked, not
# installed), no image registry (images are imported with `load`).
#
#   bash scripts/k8s-local.sh up            build what is missing (cached, keyed by version) and
#                                           start the cluster; waits until the node is Ready
#   bash scripts/k8s-local.sh down          stop what `up` started and undo every host change
#                                           (iptables chains, bridge, mounts, netns, cgroups)
#   bash scripts/k8s-local.sh kubeconfig    print the admin kubeconfig's path
#   bash scripts/k8s-local.sh kubectl-path  print the path of the kubectl built for this cluster
#   bash scripts/k8s-local.sh load IMAGE    import an image of the container engine
#                                           (scripts/container-engine.sh) or a docker-archive
#                                           tarball (IMAGE ending in .tar) into the cluster;
#                                           prints the name pods use
#   bash scripts/k8s-local.sh host-ip       the address pods reach the host on (the pod bridge's)
#   bash scripts/k8s-local.sh status        what runs (exit 0 only if the node is Ready)
#   bash scripts/k8s-local.sh build         only build and fetch (what `up` caches)
#
# What runs (all as host processes, logs in $K8S_DIR/cluster/logs/):
#   etcd 127.0.0.1:12379, kube-apiserver https://127.0.0.1:16443 (token auth, RBAC, PodSecurity
#   admission as in any cluster), kube-controller-manager, kube-scheduler, containerd (CRI), kubelet
#   (node $NODE_NAME), kube-proxy (iptables mode, so Service ClusterIPs route from pods and from
#   the host) and CoreDNS (answers cluster.local on the host IP, the kubelet's clusterDNS).
# Pods: 10.244.0.0/24 on bridge $BRIDGE (host side $HOST_IP), Services: 10.96.0.0/24.
# Not there: a LoadBalancer implementation, an Ingress or Gateway controller, metrics-server,
# NetworkPolicy enforcement (the bridge plugin ignores policies; the API accepts them).
#
# Caches (kept by `down`, removed by `make clean`), keyed by version:
#   $K8S_DIR/cache/kubernetes-v$KUBE_VERSION/   kube-apiserver ... kubectl, kube-proxy (~6 min to build
#                                               on 2 cores; Go's module and build caches also help)
#   $K8S_DIR/cache/coredns-v$COREDNS_VERSION/   coredns with the plugins used here
#   $K8S_DIR/cache/debs-<package list hash>/    containerd, etcd, CNI plugins, unpacked
#   $K8S_DIR/cache/pause-<source hash>.tar      the sandbox ("pause") image, a static C program
# Cluster state lives in $K8S_DIR/cluster/ and is deleted by `down`.
#
# This machine's specifics (found by hand, see issue 12): root without CAP_SYS_RESOURCE, so
# containerd's CRI needs restrict_oom_score_adj; cgroup v1 hybrid, so the kubelet needs
# cgroupDriver cgroupfs and failCgroupV1 false (Kubernetes 1.35 refuses cgroup v1 by default: stay
# on 1.34 or older here).
#
# Environment: K8S_DIR [<repo>/.tools/k8s], KUBE_VERSION [1.33.1], COREDNS_VERSION [1.12.2],
# K8S_TIMEOUT [180] seconds per wait.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S_DIR="${K8S_DIR:-$ROOT/.tools/k8s}"
KUBE_VERSION="${KUBE_VERSION:-1.33.1}"
COREDNS_VERSION="${COREDNS_VERSION:-1.12.2}"
K8S_TIMEOUT="${K8S_TIMEOUT:-180}"
CACHE="$K8S_DIR/cache"
C="$K8S_DIR/cluster"
KUBE_BIN="$CACHE/kubernetes-v$KUBE_VERSION"
COREDNS_BIN="$CACHE/coredns-v$COREDNS_VERSION/coredns"
DEB_PACKAGES=(containerd containernetworking-plugins etcd-server)
DEBS="$CACHE/debs-$(printf '%s ' "${DEB_PACKAGES[@]}" | sha256sum | cut -c1-12)"
NODE_NAME=hookbridge-node
BRIDGE=hbcni0
HOST_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
API=https://127.0.0.1:16443
PAUSE_IMAGE=localhost/hookbridge-k8s/pause:1
# processes in start order; `down` stops them in reverse
COMPONENTS=(etcd containerd apiserver controller-manager scheduler kubelet kube-proxy coredns)

say() { printf '[k8s] %s\n' "$*" >&2; }
die() { printf '[k8s] ERROR: %s\n' "$*" >&2; exit 1; }

kubectl() { "$KUBE_BIN/kubectl" --kubeconfig "$C/pki/admin.kubeconfig" "$@"; }
ctr() { "$DEBS/root/usr/bin/ctr" --address "$C/containerd/containerd.sock" -n k8s.io "$@"; }

# ---------------------------------------------------------------------------------------------
# Build and fetch (cached)

install_host_packages() { # iptables for kube-proxy and the CNI plugins, conntrack for kube-proxy
  local need=()
  command -v iptables >/dev/null || need+=(iptables)
  command -v conntrack >/dev/null || need+=(conntrack)
  command -v runc >/dev/null || need+=(runc)
  command -v openssl >/dev/null || need+=(openssl)
  command -v ip >/dev/null || need+=(iproute2)
  command -v socat >/dev/null || need+=(socat)   # make k8s-test relays the registry to the pods
  if ((${#need[@]})); then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

fetch_debs() {
  [ -x "$DEBS/root/usr/bin/containerd" ] && return 0
  say "fetching ${DEB_PACKAGES[*]} from Debian (unpacked into $DEBS)"
  rm -rf "$DEBS.tmp" && mkdir -p "$DEBS.tmp/debs"
  if ! (cd "$DEBS.tmp/debs" && apt-get download "${DEB_PACKAGES[@]}" >/dev/null 2>&1); then
    apt-get update -qq   # a fresh machine may have no package lists yet
    (cd "$DEBS.tmp/debs" && apt-get download "${DEB_PACKAGES[@]}" >/dev/null)
  fi
  for f in "$DEBS.tmp"/debs/*.deb; do dpkg -x "$f" "$DEBS.tmp/root"; done
  rm -rf "$DEBS" && mv "$DEBS.tmp" "$DEBS"
}

# Kubernetes is not meant to be a Go dependency: its go.mod points the k8s.io/* modules at
# ./staging. A wrapper module requires k8s.io/kubernetes and replaces each staging module by its
# published v0.<minor>.<patch>, which is the same code.
build_kubernetes() {
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl) c
  local ok=1
  for c in "${cmds[@]}"; do [ -x "$KUBE_BIN/$c" ] || ok=0; done
  [ "$ok" = 1 ] && return 0
  local work="$CACHE/build-kubernetes-v$KUBE_VERSION" t0=$SECONDS mod
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  say "building Kubernetes v$KUBE_VERSION (${cmds[*]}) from the Go module proxy (log $work/build.log)"
  go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" >/dev/null
  mod="$(go env GOMODCACHE)/k8s.io/kubernetes@v$KUBE_VERSION"
  {
    printf 'module hookbridge.local/k8sbuild\n\ngo 1.24.0\n\ngodebug default=go1.24\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$KUBE_VERSION"
    grep -E '^\s+k8s.io/[a-z-]+ => ./staging' "$mod/go.mod" | awk -v v="0.${KUBE_VERSION#1.}" '{print "\t"$1" => "$1" v"v}'
    echo ')'
  } >go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "${cmds[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    echo ')'
  } >tools.go
  go mod tidy >build.log 2>&1 || { tail -n 30 build.log >&2; die "go mod tidy failed"; }
  local v=k8s.io/component-base/version pkgs=()
  for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  mkdir -p "$KUBE_BIN.tmp"
  CGO_ENABLED=0 go build -trimpath -o "$KUBE_BIN.tmp/" \
    -ldflags "-s -w -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X $v.gitTreeState=clean" \
    "${pkgs[@]}" >>build.log 2>&1 || { tail -n 30 build.log >&2; die "go build failed (log $work/build.log)"; }
  rm -rf "$KUBE_BIN" && mv "$KUBE_BIN.tmp" "$KUBE_BIN"
  cd "$ROOT" && rm -rf "$work"
  say "Kubernetes built in $((SECONDS - t0)) s: $KUBE_BIN"
}

# CoreDNS with the plugins this cluster's Corefile uses (the full build links every cloud
# provider's SDK): a wrapper main that imports coremain and those plugins.
build_coredns() {
  [ -x "$COREDNS_BIN" ] && return 0
  local work="$CACHE/build-coredns-v$COREDNS_VERSION" t0=$SECONDS
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  say "building CoreDNS v$COREDNS_VERSION from the Go module proxy (log $work/build.log)"
  printf 'module hookbridge.local/corednsbuild\n\ngo 1.24.0\n\nrequire github.com/coredns/coredns v%s\n' "$COREDNS_VERSION" >go.mod
  cat >main.go <<'EOF'
// CoreDNS with only the plugins scripts/k8s-local.sh's Corefile uses.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// the order plugins handle a query in, as in CoreDNS's plugin.cfg
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "loadbalance", "cache", "kubernetes"}
}

func main() { coremain.Run() }
EOF
  go mod tidy >build.log 2>&1 || { tail -n 30 build.log >&2; die "go mod tidy failed (CoreDNS)"; }
  mkdir -p "$(dirname "$COREDNS_BIN")"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$COREDNS_BIN.tmp" . >>build.log 2>&1 \
    || { tail -n 30 build.log >&2; die "go build failed (CoreDNS, log $work/build.log)"; }
  mv "$COREDNS_BIN.tmp" "$COREDNS_BIN"
  cd "$ROOT" && rm -rf "$work"
  say "CoreDNS built in $((SECONDS - t0)) s: $COREDNS_BIN"
}

# The sandbox image every pod starts with: a static program that waits for SIGTERM and reaps
# children, as a docker-archive tarball (no registry to pull registry.k8s.io/pause from).
pause_tar() {
  local src hash tar
  src="$(cat <<'EOF'
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void term(int s) { (void)s; exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, term); signal(SIGTERM, term); signal(SIGCHLD, reap);
  for (;;) pause();
}
EOF
)"
  hash="$(printf '%s' "$src" | sha256sum | cut -c1-12)"
  tar="$CACHE/pause-$hash.tar"
  if [ ! -f "$tar" ]; then
    local work="$CACHE/pause-build"
    rm -rf "$work" && mkdir -p "$work/rootfs"
    printf '%s\n' "$src" >"$work/pause.c"
    gcc -O2 -static -o "$work/rootfs/pause" "$work/pause.c"
    tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
    engine_podman import --change 'ENTRYPOINT ["/pause"]' "$work/rootfs.tar" "$PAUSE_IMAGE" >/dev/null
    engine_podman save --format docker-archive -o "$tar.tmp" "$PAUSE_IMAGE" >/dev/null
    mv "$tar.tmp" "$tar" && rm -rf "$work"
  fi
  printf '%s\n' "$tar"
}

engine_podman() {
  command -v podman >/dev/null || bash "$ROOT/scripts/container-engine.sh" up >&2
  bash "$ROOT/scripts/container-engine.sh" podman "$@"
}

cmd_build() {
  mkdir -p "$CACHE"
  install_host_packages
  fetch_debs
  build_kubernetes
  build_coredns
  pause_tar >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Configuration

write_kubeconfig() { # write_kubeconfig NAME
  cat >"$C/pki/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: hookbridge-local, cluster: {server: "$API", certificate-authority: $C/pki/ca.crt}}]
users: [{name: $1, user: {token: $(sed -n "s/^\([^,]*\),[^,]*,$1,.*/\1/p" "$C/pki/tokens.csv")}}]
contexts: [{name: hookbridge-local, context: {cluster: hookbridge-local, user: $1}}]
current-context: hookbridge-local
EOF
}

write_config() {
  mkdir -p "$C"/{pki,etc,logs,pid,cni/net.d,cni/ipam,kubelet,pod-logs}
  (
    cd "$C/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 -subj /CN=hookbridge-local-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
    echo "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:$HOST_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" >ext.cnf
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 7 -extfile ext.cnf 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    # static tokens: the control plane's components and the admin are cluster admins; the
    # kubelet is the node (Node authorizer + system:nodes)
    : >tokens.csv
    for n in admin controller-manager scheduler kube-proxy coredns; do
      echo "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'),$n,$n,\"system:masters\"" >>tokens.csv
    done
    echo "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'),system:node:$NODE_NAME,kubelet,\"system:nodes\"" >>tokens.csv
    chmod 600 ./*.key tokens.csv
  )
  for n in admin controller-manager scheduler kube-proxy coredns kubelet; do write_kubeconfig "$n"; done
  cat >"$C/etc/containerd.toml" <<EOF
version = 2
root = "$C/containerd/root"
state = "$C/containerd/state"
[grpc]
  address = "$C/containerd/containerd.sock"
[ttrpc]
  address = "$C/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$C/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  # root here lacks CAP_SYS_RESOURCE: runc cannot set the negative oom_score_adj CRI asks for
  # ("can't get final child's PID from pipe: EOF" for every sandbox) unless it is restricted
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$C/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$DEBS/root/usr/lib/cni"
    conf_dir = "$C/cni/net.d"
EOF
  # the default route through the bridge is what makes Service ClusterIPs reachable from pods
  # (kube-proxy's DNAT happens on the host)
  cat >"$C/cni/net.d/10-hookbridge.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "hookbridge-local", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$HOST_IP"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$C/cni/ipam"}}]}
EOF
  cat >"$C/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $HOST_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$C/containerd/containerd.sock
podLogsDir: $C/pod-logs
volumePluginDir: $C/kubelet/volume-plugins
clusterDNS: [$HOST_IP]
clusterDomain: cluster.local
# Secret and ConfigMap volumes are refreshed at each pod sync (1 min by default)
syncFrequency: 10s
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  cat >"$C/etc/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $HOST_IP
    errors
    health 127.0.0.1:18180
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $C/pki/coredns.kubeconfig hookbridge-local
        pods insecure
    }
    loadbalance
    cache 5
}
EOF
}

# ---------------------------------------------------------------------------------------------
# Processes

pid_alive() { # pid_alive NAME -> prints the pid if the process `up` started still runs
  local f="$C/pid/$1" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -qaF -- "$C" "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

start() { # start NAME COMMAND... (in its own session, so `down` can end it and its children)
  local n="$1"; shift
  setsid nohup "$@" >"$C/logs/$n.log" 2>&1 </dev/null &
  echo $! >"$C/pid/$n"
}

wait_for() { # wait_for WHAT LOG COMMAND...
  local what="$1" log="$2" deadline=$((SECONDS + K8S_TIMEOUT)); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$log" >&2 || true
      die "$what not ready within ${K8S_TIMEOUT} s (log $log)"
    fi
    sleep 1
  done
}

# Kernel settings the kubelet, kube-proxy and bridge_up change, and host folders they create:
# recorded by `up`, put back by `down`.
SYSCTLS=(net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables net/ipv4/conf/all/route_localnet
         vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
         kernel/keys/root_maxkeys kernel/keys/root_maxbytes)
HOST_PATHS=(/run/containerd /var/lib/kubelet /var/lib/cni /var/log/containers /var/log/pods)

save_host_state() {
  local k p
  : >"$C/sysctl.before"
  for k in "${SYSCTLS[@]}"; do
    [ -r "/proc/sys/$k" ] && printf '%s %s\n' "$k" "$(cat "/proc/sys/$k")" >>"$C/sysctl.before"
  done
  : >"$C/paths.before"
  for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] && echo "$p" >>"$C/paths.before"; done
  return 0
}

restore_host_state() {
  local k v p
  if [ -f "$C/sysctl.before" ]; then
    while read -r k v; do echo "$v" >"/proc/sys/$k" 2>/dev/null || true; done <"$C/sysctl.before"
  fi
  find /var/log/containers -maxdepth 1 -lname "$C/*" -delete 2>/dev/null || true
  for p in "${HOST_PATHS[@]}"; do
    grep -qx "$p" "$C/paths.before" 2>/dev/null && continue
    rm -rf "$p"
  done
}

bridge_up() { # the pod bridge exists before the kubelet, so the host IP is there from the start
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$HOST_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Services: traffic between pods on the bridge must pass iptables for kube-proxy's DNAT
  # (without br_netfilter, kube-proxy masquerades all Service traffic instead: see cmd_up)
  if [ -w /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  fi
  echo 1 >/proc/sys/net/ipv4/ip_forward
}

node_ready() {
  [ "$(kubectl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "needs root (containerd, kubelet, iptables)"
  if [ -d "$C" ] && node_ready; then say "cluster already up (kubeconfig $C/pki/admin.kubeconfig)"; return 0; fi
  if [ -d "$C" ]; then say "a previous cluster did not stop cleanly: tearing it down first"; cmd_down; fi
  local t0=$SECONDS
  cmd_build
  export PATH="$DEBS/root/usr/bin:$PATH"
  write_config
  ls /run/netns 2>/dev/null >"$C/netns.before" || :
  save_host_state
  bridge_up
  start etcd "$DEBS/root/usr/bin/etcd" --name hookbridge-local --data-dir "$C/etcd" \
    --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
    --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
    --initial-cluster hookbridge-local=http://127.0.0.1:12380 --listen-metrics-urls http://127.0.0.1:12381
  start containerd "$DEBS/root/usr/bin/containerd" --config "$C/etc/containerd.toml"
  wait_for containerd "$C/logs/containerd.log" test -S "$C/containerd/containerd.sock"
  ctr images import "$(pause_tar)" >/dev/null
  start apiserver "$KUBE_BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:12379 \
    --bind-address=127.0.0.1 --secure-port=16443 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --tls-cert-file="$C/pki/apiserver.crt" --tls-private-key-file="$C/pki/apiserver.key" --client-ca-file="$C/pki/ca.crt" \
    --token-auth-file="$C/pki/tokens.csv" --authorization-mode=Node,RBAC --allow-privileged=true \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$C/pki/sa.pub" --service-account-signing-key-file="$C/pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --kubelet-preferred-address-types=InternalIP,Hostname
  wait_for kube-apiserver "$C/logs/apiserver.log" kubectl get --raw /readyz
  start controller-manager "$KUBE_BIN/kube-controller-manager" --kubeconfig="$C/pki/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$C/pki/controller-manager.kubeconfig" --authorization-kubeconfig="$C/pki/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --service-account-private-key-file="$C/pki/sa.key" \
    --root-ca-file="$C/pki/ca.crt" --use-service-account-credentials=false --allocate-node-cidrs=false \
    --service-cluster-ip-range="$SERVICE_CIDR" --flex-volume-plugin-dir="$C/kcm-flex"
  start scheduler "$KUBE_BIN/kube-scheduler" --kubeconfig="$C/pki/scheduler.kubeconfig" \
    --authentication-kubeconfig="$C/pki/scheduler.kubeconfig" --authorization-kubeconfig="$C/pki/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false
  start kubelet "$KUBE_BIN/kubelet" --config="$C/etc/kubelet.yaml" --kubeconfig="$C/pki/kubelet.kubeconfig" \
    --root-dir="$C/kubelet" --cert-dir="$C/kubelet/pki" --hostname-override="$NODE_NAME" --node-ip="$HOST_IP"
  local masq=()
  if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    say "no br_netfilter: kube-proxy masquerades all Service traffic (replies between pods on the bridge would skip the reverse NAT)"
    masq=(--masquerade-all)
  fi
  start kube-proxy "$KUBE_BIN/kube-proxy" "${masq[@]}" --kubeconfig="$C/pki/kube-proxy.kubeconfig" \
    --hostname-override="$NODE_NAME" --proxy-mode=iptables --cluster-cidr="$POD_CIDR" \
    --bind-address="$HOST_IP" --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0
  start coredns "$COREDNS_BIN" -conf "$C/etc/Corefile"
  wait_for "node $NODE_NAME" "$C/logs/kubelet.log" node_ready
  wait_for CoreDNS "$C/logs/coredns.log" curl -fsS -m 2 http://127.0.0.1:18181/ready
  # pods need their namespace's default ServiceAccount, which the controller-manager creates
  wait_for "default ServiceAccount" "$C/logs/controller-manager.log" kubectl -n default get serviceaccount default
  say "cluster up in $((SECONDS - t0)) s: node $NODE_NAME Ready, API $API, kubeconfig $C/pki/admin.kubeconfig"
}

stop_component() {
  local n="$1" pid i
  pid="$(pid_alive "$n")" || { rm -f "$C/pid/$n"; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
  if [ -d "/proc/$pid" ]; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  rm -f "$C/pid/$n"
}

cmd_down() {
  [ -d "$C" ] || { say "no cluster"; return 0; }
  if [ -x "$KUBE_BIN/kubectl" ] && kubectl get --raw /readyz >/dev/null 2>&1 && pid_alive kubelet >/dev/null; then
    # let the kubelet tear pods down (network namespaces, veths, mounts)
    kubectl delete deployments,statefulsets,daemonsets,replicasets,jobs --all -A --wait=false >/dev/null 2>&1 || true
    kubectl delete pods --all -A --grace-period=1 --wait=true --timeout=60s >/dev/null 2>&1 || true
  fi
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[i]}"; done
  # containerd leaves its shims (one per pod) running: end those started under this cluster, and
  # what still runs in the pods' cgroups (only this cluster's kubelet makes kubepods)
  pgrep -f "containerd-shim-runc-v2 .*-address $C/" | xargs -r kill -KILL 2>/dev/null || true
  find /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/kubepods* -name cgroup.procs -exec cat {} + 2>/dev/null |
    sort -u | xargs -r kill -KILL 2>/dev/null || true
  sleep 1
  # kube-proxy's and the CNI plugins' iptables rules
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle; do
      { "$ipt-save" -t "$t" 2>/dev/null | grep -E '^-A [A-Z]+ .*(-j (KUBE-|CNI-)|"hookbridge k8s-test)' || true; } | sed 's/^-A /-D /' |
        while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null || true; done
      for chain in $("$ipt-save" -t "$t" 2>/dev/null | grep -oE '^:(KUBE|CNI)-[A-Za-z0-9_-]+' | tr -d :); do
        "$ipt" -t "$t" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt-save" -t "$t" 2>/dev/null | grep -oE '^:(KUBE|CNI)-[A-Za-z0-9_-]+' | tr -d :); do
        "$ipt" -t "$t" -X "$chain" 2>/dev/null || true
      done
    done
  done
  # network namespaces of pods not deleted through the API
  local ns
  for ns in /run/netns/cni-*; do
    [ -e "$ns" ] || continue
    grep -qx "${ns##*/}" "$C/netns.before" 2>/dev/null && continue
    umount "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
  mount | awk -v d="$C/" 'index($3, d) == 1 {print $3}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  find /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/kubepods* -depth -type d -exec rmdir {} \; 2>/dev/null || true
  restore_host_state
  rm -rf "$C"
  say "cluster removed (caches kept in $CACHE)"
}

cmd_load() {
  local image="${1:?usage: k8s-local.sh load IMAGE|FILE.tar}" tar name
  pid_alive containerd >/dev/null || die "the cluster is not up"
  if [[ "$image" == *.tar ]]; then
    tar="$image"
  else
    tar="$C/load-$$.tar"
    engine_podman save --format docker-archive -o "$tar" "$image" >/dev/null
  fi
  name="$(ctr images import "$tar" 2>&1 | sed -n 's/^unpacking \([^ ]*\) .*/\1/p' | head -n1)"
  [ "$tar" = "$C/load-$$.tar" ] && rm -f "$tar"
  [ -n "$name" ] || die "ctr images import did not name the image"
  say "loaded $name"
  printf '%s\n' "$name"
}

cmd_status() {
  local n pid rc=0
  for n in "${COMPONENTS[@]}"; do
    if pid="$(pid_alive "$n")"; then say "$n: running (pid $pid)"; else say "$n: not running"; rc=1; fi
  done
  if [ "$rc" = 0 ] && node_ready; then say "node $NODE_NAME Ready"; else rc=1; fi
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  build) cmd_build ;;
  kubeconfig) printf '%s\n' "$C/pki/admin.kubeconfig" ;;
  kubectl-path) printf '%s\n' "$KUBE_BIN/kubectl" ;;
  load) shift; cmd_load "$@" ;;
  host-ip) printf '%s\n' "$HOST_IP" ;;
  status) cmd_status ;;
  *) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
