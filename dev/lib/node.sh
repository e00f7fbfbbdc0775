# A real single node next to the API server: containerd + runc run the Pods' containers, and kubelet,
# kube-scheduler and kube-controller-manager (built from the Go module proxy like kube-apiserver) make
# Deployments, Jobs, garbage collection, namespace deletion and ServiceAccount tokens work.
# There is no pod network on these machines (only loopback may be used), so only `hostNetwork: true`
# Pods can run; the node is named `localhost` so that the API server reaches its kubelet on loopback.
# shellcheck shell=bash

NODE_NAME=localhost
NODE_DIR=$STATE/node
CONTAINERD_SOCKET=$NODE_DIR/containerd.sock
KUBELET_PORT=${VAP_KUBELET_PORT:-10250}
KUBELET_HEALTHZ_PORT=${VAP_KUBELET_HEALTHZ_PORT:-10248}
SCHEDULER_PORT=${VAP_SCHEDULER_PORT:-10259}
CONTROLLER_MANAGER_PORT=${VAP_CONTROLLER_MANAGER_PORT:-10257}
NODE_COMPONENTS=(kubelet kube-scheduler kube-controller-manager)
# Paths containerd, its shims, runc and the kubelet use whatever their flags say: cleaned on `down`.
NODE_HOST_PATHS=(/run/containerd/s /run/containerd/fifo /run/containerd/runc /var/lib/kubelet/device-plugins
  /var/log/containers /var/lib/cni /etc/cni/net.d/cni.lock)
NODE_PACKAGES=(containerd runc containernetworking-plugins mmdebstrap buildah uidmap fuse-overlayfs)

node_binary() {
  echo "$CACHE/bin/$1-$KUBE_VERSION-$(sha256sum "$ROOT/dev/node-build/go.sum" "$ROOT/dev/node-build/cmd/$1/main.go" | sha256sum | cut -c1-12)"
}

node_install() {
  local missing=() package
  for package in "${NODE_PACKAGES[@]}"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
  (( ${#missing[@]} == 0 )) || apt_install "${missing[@]}"
  local component
  for component in "${NODE_COMPONENTS[@]}"; do
    go_build "$ROOT/dev/node-build" "./cmd/$component" "$(node_binary "$component")" "$(kube_version_flags)"
  done
  step "building the images (skipped when their inputs have not changed)"
  images_build
  images_build_pause
}

node_write_config() {
  mkdir -p "$NODE_DIR"/{containerd,cni,kubelet,pod-logs}
  cat >"$NODE_DIR/containerd/config.toml" <<TOML
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCKET"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Required here: without it every sandbox fails (runc cannot write /proc/self/oom_score_adj).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
TOML
  # Loopback only: the runtime reports its network ready; hostNetwork Pods need nothing more.
  printf '{"cniVersion": "1.0.0", "name": "vap-loopback", "plugins": [{"type": "loopback"}]}\n' >"$NODE_DIR/cni/10-loopback.conflist"
  cat >"$NODE_DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine mounts cgroup v1 and has no systemd managing cgroups.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
# Bound to loopback only: the API server's log/exec calls come in anonymously.
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
podLogsDirectory: $NODE_DIR/pod-logs
staticPodPath: ""
# A developer's disk is not a cluster's: never evict or garbage-collect the images built here.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
YAML
}

# A kubeconfig per node component, each with its own identity (KUBE_IDENTITIES in kube.sh).
node_kubeconfigs() {
  local component
  for component in "${NODE_COMPONENTS[@]}"; do kube_write_kubeconfig "$NODE_DIR/$component.kubeconfig" "$component"; done
}

containerd_ready() { ctr --address "$CONTAINERD_SOCKET" version >/dev/null 2>&1; }

# Import each image archive once per containerd root (a list of those imported is kept beside it).
node_import_images() {
  local archive imported=$NODE_DIR/containerd/imported
  touch "$imported"
  while read -r archive; do
    grep -qxF "$archive" "$imported" && continue
    info "importing $(basename "$archive") into containerd"
    ctr --address "$CONTAINERD_SOCKET" -n k8s.io images import --no-unpack "$archive" >>"$LOGS/containerd.log" 2>&1 || die "import of $archive failed (log: $LOGS/containerd.log)"
    echo "$archive" >>"$imported"
  done < <(images_archives)
}

node_start() {
  node_write_config
  node_kubeconfigs
  is_running containerd || start_daemon containerd "$LOGS/containerd.log" containerd --config "$NODE_DIR/containerd/config.toml" --log-level warn
  wait_for containerd 30 "$LOGS/containerd.log" containerd_ready
  node_import_images
  local pki=$KUBE_DIR/pki
  is_running kubelet || start_daemon kubelet "$LOGS/kubelet.log" "$(node_binary kubelet)" \
    --config "$NODE_DIR/kubelet/config.yaml" --kubeconfig "$NODE_DIR/kubelet.kubeconfig" \
    --root-dir "$NODE_DIR/kubelet" --cert-dir "$NODE_DIR/kubelet/pki" --hostname-override "$NODE_NAME" --v 0
  is_running kube-scheduler || start_daemon kube-scheduler "$LOGS/kube-scheduler.log" "$(node_binary kube-scheduler)" \
    --kubeconfig "$NODE_DIR/kube-scheduler.kubeconfig" --authentication-kubeconfig "$NODE_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$NODE_DIR/kube-scheduler.kubeconfig" --bind-address 127.0.0.1 \
    --secure-port "$SCHEDULER_PORT" --leader-elect=false --v 0
  is_running kube-controller-manager || start_daemon kube-controller-manager "$LOGS/kube-controller-manager.log" "$(node_binary kube-controller-manager)" \
    --kubeconfig "$NODE_DIR/kube-controller-manager.kubeconfig" --authentication-kubeconfig "$NODE_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$NODE_DIR/kube-controller-manager.kubeconfig" --bind-address 127.0.0.1 \
    --secure-port "$CONTROLLER_MANAGER_PORT" --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" --v 0
}

node_ready() {
  [[ $("$VENV/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]] \
    && "$VENV/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" get serviceaccount default -n default >/dev/null 2>&1
}

node_wait() {
  wait_for kubelet 60 "$LOGS/kubelet.log" node_ready
  local name
  for name in kube-scheduler kube-controller-manager; do is_running "$name" || die "$name exited (log: $LOGS/$name.log)"; done
}

# Stop the node and leave nothing behind: no container, shim, mount or host-path litter.
node_stop() {
  stop_daemon kube-controller-manager; stop_daemon kube-scheduler; stop_daemon kubelet
  if containerd_ready; then
    local task
    for task in $(ctr --address "$CONTAINERD_SOCKET" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCKET" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
  fi
  stop_daemon containerd
  # Shims outlive containerd by design; those of this node's containerd go with it.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCKET" 2>/dev/null || true
  local mount
  while read -r mount; do umount -l "$mount" 2>/dev/null || true; done < <(awk -v dir="$NODE_DIR" 'index($2, dir) == 1 || index($2, "/run/containerd") == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf "$NODE_DIR/containerd/state" "${NODE_HOST_PATHS[@]}"
  rmdir /run/containerd 2>/dev/null || true
}

node_status() {
  if is_running kubelet && node_ready; then echo "node       up    $NODE_NAME (kubelet $KUBE_VERSION, containerd $(containerd --version | awk '{print $3}'))"; else echo "node       down"; fi
}
