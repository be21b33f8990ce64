#!/usr/bin/env bash
# Runs every check and test of hoody-api on a fresh Debian 12 machine:
# installs what the tests need, builds the Wasm guest examples from
# source, then formatting, lints and the whole test suite.
# Container tests need root (runc, network namespaces, cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh --test

if [ -x hooks-sdk/build-examples.sh ]; then
  echo "== building hook guest examples"
  ./hooks-sdk/build-examples.sh
fi

echo "== cargo fmt"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"
