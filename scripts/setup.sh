#!/usr/bin/env bash
# Installs what segrec needs to build and test, from Debian packages only.
# Idempotent and quiet when everything is already there.
set -euo pipefail

PACKAGES=(
  g++ make cmake pkg-config
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
  libeigen3-dev libboost-program-options-dev libgtest-dev
  iproute2
)
# Optional extras for benchmarks and plots: scripts/setup.sh --bench
if [[ "${1:-}" == "--bench" ]]; then
  PACKAGES+=(libopenblas0-pthread python3 python3-pandas python3-sklearn python3-h5py python3-threadpoolctl
             python3-faiss python3-torch)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
