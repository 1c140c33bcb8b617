#!/usr/bin/env bash
# Installs what segrec needs to build and test, from Debian packages only.
# Idempotent and quiet when everything is already there.
set -euo pipefail

PACKAGES=(
  g++ make cmake pkg-config
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
  libeigen3-dev libopenblas-dev libboost-program-options-dev libgtest-dev libssl-dev
  iproute2
)
# Optional extras, any of:
#   --bench  benchmarks and their peers
#   --slurm  a private Slurm cluster for the job-script tests (scripts/slurm-local.sh; srun
#            --mpi=pmix loads libpmix.so, from libpmix-dev) and the k-sweep plot
#   --fuzz   clang with libFuzzer (tests/fuzz)
#   --sanitize  clang, which builds the sanitizer tests in half GCC's time
for flag in "$@"; do
  case $flag in
    --bench)
      PACKAGES+=(libopenblas0-pthread python3 python3-pandas python3-sklearn python3-h5py
                 python3-threadpoolctl python3-faiss python3-torch) ;;
    --slurm) PACKAGES+=(slurmctld slurmd slurm-client munge libpmix-dev util-linux python3 python3-h5py
                        python3-matplotlib) ;;
    --fuzz | --sanitize) PACKAGES+=(clang) ;;
    *) echo "setup: unknown flag '$flag' (--bench, --slurm, --fuzz, --sanitize)" >&2; exit 2 ;;
  esac
done

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
# The Slurm and munge packages may try to start system daemons; the tests never use them
# (scripts/slurm-local.sh starts private ones with their own config, key and ports).
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
