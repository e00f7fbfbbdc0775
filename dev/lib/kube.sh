# A real Kubernetes API server: etcd + kube-apiserver built from the Go module proxy, run the way
# controller-runtime's envtest runs them. The node that runs Pods is dev/lib/node.sh.
# shellcheck shell=bash

# module_version GO_MOD MODULE: the version GO_MOD requires (single-line or block `require`).
module_version() {
  awk -v module="$2" '{ m = $1; v = $2 } $1 == "require" { m = $2; v = $3 } m == module && v ~ /^v/ { print v; exit }' "$1"
}
KUBE_VERSION=$(module_version "$ROOT/dev/kube-build/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(module_version "$ROOT/dev/etcd-build/go.mod" go.etcd.io/etcd/server/v3)
KUBE_BIN=$CACHE/bin/kube-apiserver-$KUBE_VERSION-$(sha256sum "$ROOT/dev/kube-build/go.sum" "$ROOT/dev/kube-build/cmd/kube-apiserver/main.go" | sha256sum | cut -c1-12)
ETCD_BIN=$CACHE/bin/etcd-$ETCD_VERSION-$(sha256sum "$ROOT/dev/etcd-build/go.sum" "$ROOT/dev/etcd-build/cmd/etcd/main.go" | sha256sum | cut -c1-12)
KUBE_DIR=$STATE/kube
KUBECONFIG_FILE=$KUBE_DIR/kubeconfig
KUBE_LOG=$LOGS/kube-apiserver.log
ETCD_LOG=$LOGS/etcd.log

# go_build MODULE_DIR PACKAGE OUTPUT [LDFLAGS]: build once into the machine-wide cache.
go_build() {
  local module=$1 package=$2 output=$3 ldflags=${4:-}
  [[ -x $output ]] && return
  command -v go >/dev/null || die "Go toolchain not found (needed once to build $(basename "$output"))"
  mkdir -p "$(dirname "$output")"
  with_progress "building $(basename "$output") from the Go module proxy (cold: minutes on 2 cores)" "$LOGS/go-build.log" \
    bash -c 'cd "$1" && go build -trimpath -ldflags "-s -w $2" -o "$3.tmp" "$4"' _ "$module" "$ldflags" "$output" "$package"
  mv "$output.tmp" "$output"
}

# The version every Kubernetes binary reports (without it /version says v0.0.0 and Helm's kubeVersion fails).
kube_version_flags() {
  echo "-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" \
    "-X k8s.io/component-base/version.gitMajor=$(cut -d. -f1 <<<"${KUBE_VERSION#v}")" \
    "-X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION")"
}

kube_install() {
  go_build "$ROOT/dev/etcd-build" ./cmd/etcd "$ETCD_BIN"
  go_build "$ROOT/dev/kube-build" ./cmd/kube-apiserver "$KUBE_BIN" "$(kube_version_flags)"
}

# Static token identities (token.csv): user and groups of each. The node's components use the
# identities Kubernetes' default RBAC (and the Node authorizer) already grant what they need.
declare -A KUBE_IDENTITIES=(
  [admin]='admin,admin-uid,"system:masters"'
  [kubelet]="system:node:$NODE_NAME,node-uid,\"system:nodes\""
  [kube-scheduler]='system:kube-scheduler,scheduler-uid'
  [kube-controller-manager]='system:kube-controller-manager,controller-manager-uid'
)

kube_token() { awk -F, -v user="$1" '$2 == user { print $1 }' "$KUBE_DIR/pki/token.csv"; }

# Certificates and keys, made once per state folder: a CA, the serving cert, the service-account key,
# and a static token per identity.
kube_credentials() {
  local pki=$KUBE_DIR/pki identity
  [[ -f $pki/sa.key ]] || kube_keys
  touch "$pki/token.csv"
  for identity in "${!KUBE_IDENTITIES[@]}"; do
    local line=${KUBE_IDENTITIES[$identity]}
    [[ -n $(kube_token "${line%%,*}") ]] || printf '%s,%s\n' "$(openssl rand -hex 24)" "$line" >>"$pki/token.csv"
  done
}

kube_keys() {
  local pki=$KUBE_DIR/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=vap-local-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile san.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

kube_start() {
  mkdir -p "$KUBE_DIR"
  kube_credentials
  if is_running etcd; then info "etcd already running"; else
    start_daemon etcd "$ETCD_LOG" "$ETCD_BIN" --name vap --data-dir "$KUBE_DIR/etcd" \
      --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
      --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
      --initial-cluster "vap=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
  fi
  if is_running kube-apiserver; then info "kube-apiserver already running"; return; fi
  local pki=$KUBE_DIR/pki
  start_daemon kube-apiserver "$KUBE_LOG" "$KUBE_BIN" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" --cert-dir "$pki" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --secure-port "$KUBE_PORT" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --service-cluster-ip-range 10.0.0.0/24 --service-account-issuer "https://127.0.0.1:$KUBE_PORT" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --token-auth-file "$pki/token.csv" --authorization-mode Node,RBAC --allow-privileged=true \
    --enable-admission-plugins NodeRestriction --endpoint-reconciler-type none --v 0
  kube_write_kubeconfig "$KUBECONFIG_FILE" admin
}

# kube_write_kubeconfig FILE IDENTITY: a kubeconfig for one identity of KUBE_IDENTITIES.
kube_write_kubeconfig() {
  local line=${KUBE_IDENTITIES[$2]} token
  token=$(kube_token "${line%%,*}")
  cat >"$1" <<CONF
apiVersion: v1
kind: Config
clusters:
- name: vap-local
  cluster:
    server: https://127.0.0.1:$KUBE_PORT
    certificate-authority: $KUBE_DIR/pki/ca.crt
users:
- name: $2
  user:
    token: $token
contexts:
- name: vap-local
  context: {cluster: vap-local, user: $2, namespace: default}
current-context: vap-local
CONF
  chmod 600 "$1"
}

etcd_ready() { curl -sf "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

kube_ready() {
  local token; token=$(kube_token admin)
  [[ $(curl -s --cacert "$KUBE_DIR/pki/ca.crt" -H "Authorization: Bearer $token" "https://127.0.0.1:$KUBE_PORT/readyz") == ok ]]
}

kube_stop() { stop_daemon kube-apiserver; stop_daemon etcd; }

kube_status() {
  if is_running etcd && etcd_ready; then echo "etcd       up    http://127.0.0.1:$ETCD_PORT ($ETCD_VERSION)"; else echo "etcd       down"; fi
  if is_running kube-apiserver && kube_ready; then echo "kube-api   up    https://127.0.0.1:$KUBE_PORT ($KUBE_VERSION, KUBECONFIG=$KUBECONFIG_FILE)"; else echo "kube-api   down"; fi
}
