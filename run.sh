#!/usr/bin/env bash
# The two commands of the README, for a fresh Debian machine (as root):
#   ./run.sh demo   install what is missing, build, run every demo scenario
#   ./run.sh test   install what is missing, build, run the whole test suite
# Set ACTORS_CMAKE_ARGS to pass options to CMake (CI: -DACTORS_WERROR=ON).
set -euo pipefail
cd "$(dirname "$0")"

packages=(cmake ninja-build g++ libcaf-dev doctest-dev libssl-dev tmux iproute2)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
      --no-install-recommends "${missing[@]}"
  fi
}

build() {
  # shellcheck disable=SC2086
  cmake -S . -B build -G Ninja ${ACTORS_CMAKE_ARGS:-}
  cmake --build build
}

case "${1:-}" in
  demo)
    install_missing
    build
    for demo in build/demos/s[0-9][0-9]_* build/demos/a[0-9][0-9]_* \
                build/demos/h[0-9][0-9]_* build/demos/m[0-9][0-9]_*; do
      echo "=== ${demo#build/demos/}"
      "$demo"
    done
    ;;
  test)
    install_missing
    build
    cd build
    ctest --output-on-failure --no-tests=error -j2
    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
