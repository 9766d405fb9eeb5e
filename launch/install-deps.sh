#!/usr/bin/env bash
# Installs every Debian 12 package that r2rec's build, tests, benchmarks and quickstart need.
# Idempotent: packages already present are skipped, so a second run costs a few seconds.
# Usage: bash launch/install-deps.sh        (as root, or with sudo available)
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build ccache pkg-config git clang-format
  # tensors: libtorch 1.13 (CPU) with the pthread OpenBLAS (without it matmuls run ~15x slower)
  libtorch-dev libopenblas0-pthread
  # processes and data at rest
  libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools zlib1g-dev
  # config, logging, CLI, JSON, text
  libyaml-cpp-dev libgoogle-glog-dev libcli11-dev nlohmann-json3-dev libpcre2-dev libutf8proc-dev
  # statistics: Student's t quantile (Boost.Math, header-only)
  libboost-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # PyTorch-Python: cross-checks and benchmark baselines (run with /usr/bin/python3)
  python3-torch python3-numpy
  # the run's plot (launch/r2rec-plot)
  python3-matplotlib
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
