#!/usr/bin/env bash
# Installs the Debian packages tessera builds and tests with. Idempotent: a package already present is
# not touched, so `make test` on a provisioned machine costs one dpkg query. Runs as root (CI) or via sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libyaml-cpp-dev libspdlog-dev libfmt-dev
  libopenblas-dev libopenblas-openmp-dev
  nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev
  libpcre2-dev libutf8proc-dev libpng-dev libjpeg62-turbo-dev
  python3-h5py
  slurm-wlm munge
)

missing=()
for p in "${packages[@]}"; do
  # `dpkg-query -W` prints the status word; anything but "install ok installed" means missing.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
