# helm, built once from the Go module proxy into the machine-wide cache (helm.sh/helm/v3 needs no
# `replace`s, so `go install` works). Used by the chart tests (tests/integration/deploy/).
# shellcheck shell=bash

HELM_VERSION=v3.22.0
HELM_BIN=${VAP_HELM:-$CACHE/bin/helm-$HELM_VERSION/helm}

# The same -X flags as helm's own Makefile. Without them `helm version` is wrong and `helm template`
# / `helm lint` assume Kubernetes v1.20, so a chart's `kubeVersion: >=1.30` fails to render.
helm_ldflags() {
  local gomod client_go minor
  gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")  # v0.37.0 is Kubernetes 1.37
  minor=$(cut -d. -f2 <<<"$client_go")
  [[ -n $minor ]] || die "cannot read k8s.io/client-go's version from helm's go.mod ($gomod)"
  local flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  local package
  for package in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X $package.k8sVersionMajor=1 -X $package.k8sVersionMinor=$minor"
  done
  printf '%s' "$flags"
}

helm_built() { [[ -x $HELM_BIN ]] && [[ $("$HELM_BIN" version --template '{{.Version}}' 2>/dev/null) == "$HELM_VERSION" ]]; }

# helm_install: build helm unless it is there (cold: about 100 s on 2 cores), and put it next to
# kubectl in the virtualenv so `helm` is on the PATH of ./dev/test and of an activated .venv.
helm_install() {
  if ! helm_built; then
    command -v go >/dev/null || die "Go toolchain not found (needed once to build helm $HELM_VERSION)"
    # Into a scratch GOBIN, then one rename: an interrupted build never leaves a half-written binary.
    local scratch ldflags
    scratch=$(dirname "$HELM_BIN").tmp
    ldflags=$(helm_ldflags) || die "cannot resolve helm $HELM_VERSION from the Go module proxy"
    mkdir -p "$(dirname "$HELM_BIN")"
    with_progress "building helm $HELM_VERSION from the Go module proxy (cold: about 2 min)" "$LOGS/go-build.log" \
      env GOBIN="$scratch" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    mv "$scratch/helm" "$HELM_BIN" && rmdir "$scratch"
    helm_built || die "$HELM_BIN does not report version $HELM_VERSION"
  fi
  if [[ -d $VENV/bin && $(readlink "$VENV/bin/helm" 2>/dev/null) != "$HELM_BIN" ]]; then
    ln -sfn "$HELM_BIN" "$VENV/bin/helm"
  fi
  info "helm: $HELM_BIN"
}
