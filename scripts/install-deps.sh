#!/usr/bin/env bash
# Installs the Debian 12 packages hoody-api needs to run and to be tested.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

RUNTIME_PKGS=(runc busybox-static iproute2 nftables debootstrap)
TEST_PKGS=(nginx-light wrk nghttp2-client wabt binaryen rustc cargo libstd-rust-dev-wasm32 lld-14 nodejs npm curl)

want=("${RUNTIME_PKGS[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${TEST_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere than Debian's packages: accept any on PATH.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do
    case "$p" in nodejs|npm) ;; *) filtered+=("$p") ;; esac
  done
  missing=("${filtered[@]}")
fi

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
