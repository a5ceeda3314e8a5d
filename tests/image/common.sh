# Sourced by tests/image/test-image.sh and test-image-gpu.sh: podman without a Docker engine or a
# registry for base images, from a Debian base image built locally with debootstrap.
# shellcheck shell=bash
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PY=${PY:-.venv/bin/python}
BASE=localhost/ocr-base:bookworm
ROOTFS=.cache/image/rootfs
PODMAN=(podman --storage-driver vfs)
# podman without a daemon or cgroup delegation: chroot isolation for RUN, runc, bounded ulimits, host network,
# the host CA bundle for pip inside RUN
export BUILDAH_ISOLATION=chroot
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
CA=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "installing podman/buildah/debootstrap"; apt-get update -qq;
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman buildah debootstrap runc >/dev/null; break; }
done

# the base image: Debian bookworm minbase with python3, made once with debootstrap
ensure_base() {
  if ! "${PODMAN[@]}" image exists "$BASE"; then
    echo "== base image: debootstrap bookworm (minbase + python3)"
    rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
    tar -C "$ROOTFS" -c . | "${PODMAN[@]}" import - "$BASE" >/dev/null
    rm -rf "$ROOTFS"
  fi
}

# build_image IMAGE [more build arguments]: builds the Dockerfile on the base image; prints the
# build's wall time and the image's size. vfs storage keeps a full copy of the file system for
# every layer: --layers=false commits one layer per stage instead of one per instruction (the GPU
# image's 3.5 GB took some 55 GB of disk to build with a layer per instruction).
build_image() {
  local image=$1; shift
  echo "== build $image (BASE_IMAGE=$BASE $*)"
  local start=$SECONDS
  "${PODMAN[@]}" build --layers=false --format docker --runtime runc --network host "${LIMITS[@]}" "${CA[@]}" \
    --build-arg BASE_IMAGE="$BASE" "$@" -t "$image" -f Dockerfile .
  BUILD_SECONDS=$((SECONDS - start))
  IMAGE_BYTES=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$image")
  echo "== built $image in $BUILD_SECONDS s; image size $((IMAGE_BYTES / 1000000)) MB ($IMAGE_BYTES bytes)"
}

free_port() { $PY -c "from harness.localserver import free_port; print(free_port())"; }
new_token() { $PY -c "import secrets; print(secrets.token_urlsafe(24))"; }
