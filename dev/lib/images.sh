# Container images built on this machine without Docker Hub or a Docker engine: a Debian base with
# Python 3.11 (mmdebstrap), the project's three Dockerfiles built on it with buildah, and the pause
# image the kubelet's sandboxes need. Each is cached as an OCI archive named by a hash of its inputs,
# then imported into the node's containerd (dev/lib/node.sh).
# Behind a TLS-intercepting proxy pip inside a build cannot reach PyPI, so the builds install from a
# wheelhouse that pip fills on the host (its proxy settings and CA apply there) and never touch an index.
# shellcheck shell=bash

IMAGES_CACHE=$CACHE/images
IMAGE_TAG=dev
IMAGES_LOG=$LOGS/images.log
# buildah's storage: a work area only (what is kept are the archives), outside the clone.
BUILDAH=(buildah --root "$CACHE/buildah/root" --runroot "$STATE/buildah-run" --storage-driver overlay)
BASE_PACKAGES=python3,python3-venv,ca-certificates,passwd
# name:Dockerfile:target, and the folders each image is built from (with constraints.txt).
IMAGES=(api:api/Dockerfile: operator:operator/Dockerfile:kubernetes runner:runner-image/Dockerfile:)
declare -A IMAGE_INPUTS=([api]="common api alembic.ini" [operator]="common operator" [runner]="common runner-image")

# inputs_hash PATH...: one hash of the files' names and contents (what git would track, dirty or not).
inputs_hash() {
  (cd "$ROOT" && git ls-files -co --exclude-standard -- "$@" | sort | xargs sha256sum) | sha256sum | cut -c1-12
}

base_archive() { echo "$IMAGES_CACHE/base-bookworm-$(echo "$BASE_PACKAGES" | sha256sum | cut -c1-8).tar"; }

# The base: Debian bookworm's own Python 3.11 in a venv at /usr/local, so that `pip`, `python` and
# installed scripts sit where they do in the official python image and the Dockerfiles run unchanged.
images_build_base() {
  local rootfs; rootfs=$(base_archive)
  [[ -f $rootfs ]] && return
  mkdir -p "$IMAGES_CACHE"
  with_progress "making the Debian base (mmdebstrap, cold: about 4 min)" "$IMAGES_LOG" mmdebstrap --variant=minbase \
    --include="$BASE_PACKAGES" --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --customize-hook='chroot "$1" python3 -m venv /usr/local' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' bookworm "${rootfs%.tar}.partial.tar"  # mmdebstrap picks the format by the name's extension
  mv "${rootfs%.tar}.partial.tar" "$rootfs"
}

base_image() { echo "localhost/vap-base:$(basename "$(base_archive)" .tar)"; }

images_load_base() {
  "${BUILDAH[@]}" inspect --type image "$(base_image)" >/dev/null 2>&1 && return
  local ctr; ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr" "$(base_archive)" / >>"$IMAGES_LOG" 2>&1
  "${BUILDAH[@]}" config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 --cmd python "$ctr"
  "${BUILDAH[@]}" commit --rm "$ctr" "$(base_image)" >>"$IMAGES_LOG" 2>&1
}

image_archive() { echo "$IMAGES_CACHE/vap-$1-$(inputs_hash constraints.txt "$2" ${IMAGE_INPUTS[$1]}).tar"; }

# The wheels of every dependency of the images, and the build backend their packages need.
wheelhouse() { echo "$IMAGES_CACHE/wheelhouse-$(inputs_hash constraints.txt common/pyproject.toml api/pyproject.toml operator/pyproject.toml runner-image/pyproject.toml)"; }

images_wheelhouse() {
  local house; house=$(wheelhouse)
  if [[ ! -d $house ]]; then
    # The host's Python is 3.11 on x86_64 Linux like the images', so its choice of wheels fits them.
    with_progress "downloading the images' wheels" "$IMAGES_LOG" "$VENV/bin/pip" download --progress-bar off -q -d "$house.tmp" \
      --only-binary=:all: -c "$ROOT/constraints.txt" "setuptools>=69" wheel \
      "$ROOT/common" "$ROOT/api" "$ROOT/operator" "$ROOT/runner-image"
    rm -f "$house.tmp"/vap_*  # the project's own packages are built from source in the image
    mv "$house.tmp" "$house"
  fi
}

images_build() {
  mkdir -p "$IMAGES_CACHE"
  local spec missing=()
  for spec in "${IMAGES[@]}"; do
    IFS=: read -r name dockerfile _ <<<"$spec"
    [[ -f $(image_archive "$name" "$dockerfile") ]] || missing+=("$spec")
  done
  (( ${#missing[@]} )) || return 0
  images_build_base
  images_load_base
  images_wheelhouse
  local house; house=$(wheelhouse)
  for spec in "${missing[@]}"; do
    IFS=: read -r name dockerfile target <<<"$spec"
    local archive; archive=$(image_archive "$name" "$dockerfile")
    with_progress "building vap-$name" "$IMAGES_LOG" "${BUILDAH[@]}" bud --isolation chroot --network host --pull=never --layers=false \
      --build-arg "BASE_IMAGE=$(base_image)" --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels \
      --volume "$house:/wheels:ro" ${target:+--target "$target"} -f "$ROOT/$dockerfile" -t "vap-$name:$IMAGE_TAG" "$ROOT"
    "${BUILDAH[@]}" push "vap-$name:$IMAGE_TAG" "oci-archive:$archive.tmp:docker.io/library/vap-$name:$IMAGE_TAG" >>"$IMAGES_LOG" 2>&1
    mv "$archive.tmp" "$archive"
    "${BUILDAH[@]}" rmi "vap-$name:$IMAGE_TAG" >>"$IMAGES_LOG" 2>&1 || true
    info "vap-$name: $(du -m "$archive" | cut -f1) MB archive"
  done
}

# The sandbox ("pause") image: Kubernetes' own pause.c, compiled static into an image of one file.
pause_archive() { echo "$IMAGES_CACHE/pause-$KUBE_VERSION.tar"; }
PAUSE_IMAGE=registry.k8s.io/pause:vap-local

images_build_pause() {
  local archive; archive=$(pause_archive)
  [[ -f $archive ]] && return
  mkdir -p "$IMAGES_CACHE"
  local work; work=$(mktemp -d)
  local source; source=$(cd "$ROOT/dev/node-build" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  gcc -Os -static -o "$work/pause" "$source/build/pause/linux/pause.c" -DVERSION=vap-local
  strip "$work/pause"
  local ctr; ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" copy "$ctr" "$work/pause" /pause >>"$IMAGES_LOG" 2>&1
  "${BUILDAH[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  "${BUILDAH[@]}" commit --rm "$ctr" "$PAUSE_IMAGE" >>"$IMAGES_LOG" 2>&1
  "${BUILDAH[@]}" push "$PAUSE_IMAGE" "oci-archive:$archive.tmp:$PAUSE_IMAGE" >>"$IMAGES_LOG" 2>&1
  mv "$archive.tmp" "$archive"
  rm -rf "$work"
}

# The image archives the node imports, one per line.
images_archives() {
  pause_archive
  local spec
  for spec in "${IMAGES[@]}"; do IFS=: read -r name dockerfile _ <<<"$spec"; image_archive "$name" "$dockerfile"; done
}
