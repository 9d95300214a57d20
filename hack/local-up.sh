#!/usr/bin/env bash
# hack/local-up.sh: a kubeish cluster on this machine, in the foreground.
#
#   hack/local-up.sh [up]          start it; Ctrl-C stops everything and cleans up
#   hack/local-up.sh down          clean up after a crash (processes it recorded, namespaces, context)
#   hack/local-up.sh exec HOST CMD run CMD on a simulated host (kubeish-cp, node-1, ...)
#   hack/local-up.sh shell HOST    a shell there
#
# Options (environment): NODES (default 1), DATA_DIR (default ./.data),
# BIN (default ./bin), SKIP_BUILD (non-empty: use BIN as it is), LOG_LEVEL (default info), KUBECONFIG_FILE (default:
# client-go's rules, i.e. $KUBECONFIG or ~/.kube/config).
#
# Topology (DESIGN.md "Local topology"): every simulated host is a network
# namespace: kubeish-cp (10.250.0.1) runs apiserver, controller and
# scheduler; kubeish-node-N (10.250.0.(N+1)) runs one kubeletish. Their veths
# meet on a bridge in a namespace of its own, kubeish-net; the root namespace
# gets no address on it. The user reaches the apiserver on 127.0.0.1:6443
# through a forwarder that dials from inside kubeish-cp, and a "kubeish"
# context is merged into the kubeconfig.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
NODES=${NODES:-1}
DATA_DIR=${DATA_DIR:-$ROOT/.data}
BIN=${BIN:-$ROOT/bin}
LOG_LEVEL=${LOG_LEVEL:-info}
KUBECONFIG_FILE=${KUBECONFIG_FILE:-}
RUN_DIR=/run/kubeish          # short socket paths (< 107 bytes)
PIDS_FILE=$RUN_DIR/pids
NET_NS=kubeish-net
CP_NS=kubeish-cp
CP_IP=10.250.0.1
PREFIX=24
API_PORT=6443
SERVICE_CIDR=10.96.0.0/16
CLUSTER_CIDR=10.244.0.0/16
CONTAINERD_SOCK=$RUN_DIR/containerd.sock

log() { printf '\033[1m[local-up]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

node_ns() { echo "kubeish-node-$1"; }
node_ip() { echo "10.250.0.$(($1 + 1))"; }

host_ns() {
  case $1 in
    kubeish-cp|cp) echo $CP_NS ;;
    node-*) echo "kubeish-$1" ;;
    kubeish-node-*) echo "$1" ;;
    *) die "unknown host $1 (kubeish-cp, node-1, node-2, ...)" ;;
  esac
}

in_ns() { local ns=$1; shift; nsenter --net=/run/netns/"$ns" "$@"; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root (network namespaces, containerd)"; }

install_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v curl >/dev/null || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

build() {
  if [ -n "${SKIP_BUILD:-}" ]; then log "SKIP_BUILD set: using the binaries in $BIN"; return; fi
  log "building binaries into $BIN"
  make -s build BIN="$BIN"
  go build -o "$BIN/localup" ./hack/localup
}

# build_images builds the example images the manifests use, as OCI
# archives: kubeish/echo:v1 and :v2 (the same program, greeting with its
# version from $ECHO_VERSION: two tags to roll between). No registry is
# needed: each node imports them.
IMAGES_DIR=
build_images() {
  IMAGES_DIR=$DATA_DIR/images
  mkdir -p "$IMAGES_DIR"
  log "building example images into $IMAGES_DIR"
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$IMAGES_DIR/echo" ./hack/images/echo
  local tag
  for tag in v1 v2; do
    "$BIN/kctl" image build "$IMAGES_DIR/echo" -t "kubeish/echo:$tag" --env "ECHO_VERSION=$tag" \
      -o "$IMAGES_DIR/echo-$tag.tar" >/dev/null
  done
}

# import_images imports the example images into every node's containerd
# namespace (node-side, as on a real machine: kubeletish images import).
import_images() {
  local n
  for n in $(seq 1 "$NODES"); do
    "$BIN/kubeletish" images import --containerd-address "$CONTAINERD_SOCK" \
      --containerd-namespace "kubeish-node-$n" "$IMAGES_DIR"/echo-*.tar >/dev/null
  done
  log "imported kubeish/echo:v1 and :v2 into $NODES node(s)"
}

# start NAME NS CMD...: run CMD in host namespace NS (or the root one when
# NS is empty) with every line of its output prefixed by NAME; record its PID.
start() {
  local name=$1 ns=$2; shift 2
  local color=$(( 31 + $(printf '%s' "$name" | cksum | cut -d' ' -f1) % 6 ))
  if [ -n "$ns" ]; then
    nsenter --net=/run/netns/"$ns" "$@" > >(sed -u "s/^/$(printf '\033[%dm' $color)[$name]$(printf '\033[0m') /") 2>&1 &
  else
    "$@" > >(sed -u "s/^/$(printf '\033[%dm' $color)[$name]$(printf '\033[0m') /") 2>&1 &
  fi
  echo "$! $name" >> "$PIDS_FILE"
}

make_netns() {
  local ns=$1
  ip netns add "$ns"
  ip -n "$ns" link set lo up
}

# add_host NS IP: a veth from host NS to the bridge.
add_host() {
  local ns=$1 ip=$2 i=$3
  make_netns "$ns"
  ip link add "kb$i" netns "$NET_NS" type veth peer name eth0 netns "$ns"
  ip -n "$NET_NS" link set "kb$i" master br0 up
  ip -n "$ns" addr add "$ip/$PREFIX" dev eth0
  ip -n "$ns" link set eth0 up
}

setup_network() {
  log "creating hosts: $CP_NS and $NODES node(s)"
  make_netns "$NET_NS"
  ip -n "$NET_NS" link add br0 type bridge
  ip -n "$NET_NS" link set br0 up
  add_host "$CP_NS" "$CP_IP" 0
  for n in $(seq 1 "$NODES"); do
    add_host "$(node_ns "$n")" "$(node_ip "$n")" "$n"
    # Pods route through the node.
    in_ns "$(node_ns "$n")" sysctl -qw net.ipv4.ip_forward=1
  done
}

# setup_pki makes (once) the cluster CA in $PKI, the apiserver's --cert-dir,
# and issues every identity the cluster uses: the components' and nodes'
# kubeconfigs, the nodes' serving certificates, the admin's kubeconfig (a
# client certificate in system:masters, merged into the user's kubeconfig as
# context "kubeish") and an admin bearer token for curl. Secrets are
# encrypted at rest with a key made here. Nothing is reissued while valid,
# so a restarted cluster keeps its credentials.
PKI=
setup_pki() {
  PKI=$DATA_DIR/pki
  local server=https://$CP_IP:$API_PORT
  "$BIN/kctl" pki init --ca-dir "$PKI" >/dev/null
  issue() { # FILE ARGS...: a kubeconfig, unless it exists
    local file=$1; shift
    [ -s "$file" ] || "$BIN/kctl" pki kubeconfig --ca-dir "$PKI" -o "$file" "$@"
  }
  issue "$PKI/admin.kubeconfig" --user kubeish-admin --group system:masters --server "https://127.0.0.1:$API_PORT"
  issue "$PKI/controller.kubeconfig" --user system:kube-controller-manager --server "$server"
  issue "$PKI/scheduler.kubeconfig" --user system:kube-scheduler --server "$server"
  local n
  for n in $(seq 1 "$NODES"); do
    [ -s "$PKI/nodes/node-$n/kubeconfig" ] || "$BIN/kctl" pki node "node-$n" --ca-dir "$PKI" \
      --ip "$(node_ip "$n")" --server "$server" -o "$PKI/nodes/node-$n" >/dev/null
  done
  if [ ! -s "$PKI/tokens.csv" ]; then
    (umask 077; "$BIN/kctl" pki token kubeish-admin --group system:masters > "$PKI/tokens.csv")
  fi
  (umask 077; cut -d, -f1 "$PKI/tokens.csv" | head -1 > "$DATA_DIR/admin.token")
  if [ ! -s "$PKI/encryption.keys" ]; then
    (umask 077; echo "key1:$(head -c 32 /dev/urandom | base64)" > "$PKI/encryption.keys")
  fi
  local args=(--from "$PKI/admin.kubeconfig")
  [ -n "$KUBECONFIG_FILE" ] && args+=(--kubeconfig "$KUBECONFIG_FILE")
  "$BIN/localup" kubeconfig set "${args[@]}"
}

start_containerd() {
  local root=$DATA_DIR/containerd
  mkdir -p "$root"
  cat > "$root/config.toml" <<EOF
version = 2
root = "$root/root"
state = "$RUN_DIR/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CONTAINERD_SOCK"
EOF
  start containerd "" containerd --config "$root/config.toml" --log-level warn
  wait_for "containerd" 30 test -S "$CONTAINERD_SOCK"
}

start_control_plane() {
  start apiserver $CP_NS "$BIN/apiserver" \
    --listen-address "$CP_IP:$API_PORT" --advertise-address "$CP_IP" \
    --cert-dir "$PKI" --tls-san 127.0.0.1 --token-auth-file "$PKI/tokens.csv" \
    --encryption-key-file "$PKI/encryption.keys" --metrics-anonymous \
    --data-dir "$DATA_DIR/apiserver" \
    --etcd-listen-client-url http://127.0.0.1:2379 --etcd-listen-peer-url http://127.0.0.1:2380 \
    --service-cluster-ip-range "$SERVICE_CIDR" --log-level "$LOG_LEVEL"
  start forwarder "" "$BIN/localup" forward --listen "127.0.0.1:$API_PORT" \
    --netns /run/netns/$CP_NS --target "$CP_IP:$API_PORT"
  wait_for "the apiserver" 60 curl -fsS -o /dev/null --cacert "$PKI/ca.crt" "https://127.0.0.1:$API_PORT/readyz"
  if [ -x "$BIN/controller" ]; then
    start controller $CP_NS "$BIN/controller" --kubeconfig "$PKI/controller.kubeconfig" --bind-address "$CP_IP:10257" \
      --cluster-cidr "$CLUSTER_CIDR" --log-level "$LOG_LEVEL"
  fi
  if [ -x "$BIN/scheduler" ]; then
    start scheduler $CP_NS "$BIN/scheduler" --kubeconfig "$PKI/scheduler.kubeconfig" --bind-address "$CP_IP:10259" \
      --log-level "$LOG_LEVEL"
  fi
}

start_nodes() {
  [ -x "$BIN/kubeletish" ] || { log "no kubeletish binary yet: control plane only"; return; }
  start_containerd
  # Images first: pods already in the API (from an earlier run) start as
  # soon as their agent does, and must find them.
  import_images
  local n creds
  for n in $(seq 1 "$NODES"); do
    creds=$PKI/nodes/node-$n
    start "node-$n" "$(node_ns "$n")" "$BIN/kubeletish" \
      --node-name "node-$n" --node-ip "$(node_ip "$n")" --kubeconfig "$creds/kubeconfig" \
      --tls-cert-file "$creds/kubelet.crt" --tls-private-key-file "$creds/kubelet.key" \
      --client-ca-file "$creds/ca.crt" --metrics-anonymous \
      --containerd-address "$CONTAINERD_SOCK" --containerd-namespace "kubeish-node-$n" \
      --root-dir "$DATA_DIR/nodes/node-$n" --cni-bin-dir /usr/lib/cni \
      --cluster-cidr "$CLUSTER_CIDR" --service-cluster-ip-range "$SERVICE_CIDR" \
      --log-level "$LOG_LEVEL"
  done
}

# wait_nodes_ready waits until every node agent's Node is Ready.
wait_nodes_ready() {
  [ -x "$BIN/kubeletish" ] || return 0
  wait_for "$NODES Ready node(s)" 120 nodes_ready
}

nodes_ready() {
  [ "$("$BIN/kctl" --kubeconfig "$PKI/admin.kubeconfig" get nodes --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)" -ge "$NODES" ]
}

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds or time runs out.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what did not come up within ${secs}s"
    sleep 0.2
  done
}

# stop_processes: SIGTERM every process we recorded (by PID, never by
# name), newest first, then SIGKILL what is left after 10 s.
stop_processes() {
  [ -f "$PIDS_FILE" ] || return 0
  local pids=()
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then pids=("$pid" "${pids[@]}"); fi
  done < "$PIDS_FILE"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$PIDS_FILE"
}

all_running() {
  local pid name
  while read -r pid name; do
    kill -0 "$pid" 2>/dev/null || { log "$name (pid $pid) exited"; return 1; }
  done < "$PIDS_FILE"
}

remove_netns() {
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep -E '^kubeish-' || true); do
    ip netns delete "$ns" 2>/dev/null || true
  done
}

down() {
  trap - EXIT INT TERM
  log "stopping"
  stop_processes
  # The containers outlive the agents and containerd (their shims are
  # nobody's children): kill them by their cgroups, then unmount their
  # root filesystems and the pods' network namespaces. Node-local state
  # goes with them; the API's objects stay in etcd, and the next `up`
  # starts the pods again, as after a reboot.
  if [ -x "$BIN/localup" ]; then
    "$BIN/localup" teardown --cgroup-parent /kubeish --containerd-address "$CONTAINERD_SOCK" \
      --unmount "$RUN_DIR" --unmount "$DATA_DIR/nodes" --unmount "$DATA_DIR/containerd" || true
  fi
  rm -rf "$DATA_DIR/nodes" "$DATA_DIR/containerd"
  remove_netns
  rm -rf "$RUN_DIR"
  local args=()
  [ -n "$KUBECONFIG_FILE" ] && args+=(--kubeconfig "$KUBECONFIG_FILE")
  [ -x "$BIN/localup" ] && "$BIN/localup" kubeconfig remove "${args[@]}" || true
  log "stopped; the API's data and the cluster's credentials stay in $DATA_DIR (rm -rf $DATA_DIR for a fresh cluster)"
}

up() {
  need_root
  if [ -f "$PIDS_FILE" ] || ip netns list | grep -q '^kubeish-'; then
    die "a cluster seems to be running or left over: run 'make down' first"
  fi
  install_packages
  build
  build_images
  mkdir -p "$RUN_DIR" "$DATA_DIR"
  : > "$PIDS_FILE"
  trap down EXIT
  trap 'exit 130' INT TERM
  setup_network
  setup_pki
  start_control_plane
  start_nodes
  wait_nodes_ready
  log "kubeish is up: apiserver https://127.0.0.1:$API_PORT, context 'kubeish' (admin, client certificate)"
  cat >&2 <<EOF
  try:
    curl --cacert $PKI/ca.crt -H "Authorization: Bearer \$(cat $DATA_DIR/admin.token)" https://127.0.0.1:$API_PORT/api/v1/namespaces
    bin/kctl apply -f manifests/
    bin/kctl get pods -o wide
    bin/kctl get svc web                      # its CLUSTER-IP
    hack/local-up.sh exec node-1 curl -s http://<CLUSTER-IP>/
    hack/local-up.sh exec node-1 curl -s http://10.250.0.2:30080/      # the NodePort
    make shell NODE=node-1                    # a shell on a node
  Ctrl-C stops the cluster.

EOF
  # Run until interrupted or until a component dies.
  while all_running; do sleep 1; done
  log "a component exited; stopping the cluster"
}

case ${1:-up} in
  up) up ;;
  down) need_root; down ;;
  exec) need_root; [ $# -ge 3 ] || die "usage: $0 exec HOST CMD..."; ns=$(host_ns "$2"); shift 2; in_ns "$ns" "$@" ;;
  shell) need_root; [ $# -ge 2 ] || die "usage: $0 shell HOST"; in_ns "$(host_ns "$2")" "${SHELL:-/bin/bash}" ;;
  *) die "unknown command $1 (up, down, exec, shell)" ;;
esac
