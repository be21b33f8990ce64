#!/bin/sh
# Builds every example hook into target/hooks-examples/*.wasm (override with
# HOOKS_EXAMPLES_OUT). Idempotent and incremental; the hook-engine tests call it.
#
# Requires, and installs nothing else:
#   - Debian's Rust 1.63 toolchain: apt-get install rustc cargo libstd-rust-dev-wasm32
#     (/usr/bin/rustc, /usr/bin/cargo; override with DEBIAN_RUSTC / DEBIAN_CARGO)
#   - for the AssemblyScript example: apt-get install nodejs npm, and access to the npm
#     registry the first time: `npm ci` installs the locked packages into
#     examples/assemblyscript/node_modules (nothing global). HOOKS_SKIP_AS=1 skips it.
#
# Debian's cargo 1.65 cannot read the main workspace manifest, so hooks-sdk and its
# examples are staged under target/ with their own [workspace] tables and built offline
# (the official proxy-wasm example from its committed vendor/ directory).
set -eu

SDK=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$SDK")
OUT=${HOOKS_EXAMPLES_OUT:-$ROOT/target/hooks-examples}
BUILD=$ROOT/target/hooks-examples-build
STAGE=$BUILD/stage/hooks-sdk
CARGO_163=${DEBIAN_CARGO:-/usr/bin/cargo}
RUSTC_163=${DEBIAN_RUSTC:-/usr/bin/rustc}
SDK_EXAMPLES="add_header path_deny jwt_route json_responder rate_limit"

mkdir -p "$OUT" "$STAGE/examples"

# Settings of an outer cargo (when called from `cargo test`) must not leak in.
debian_cargo() {
    env -u CARGO_TARGET_DIR -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET \
        -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER -u CARGO -u RUSTUP_TOOLCHAIN \
        RUSTC="$RUSTC_163" CARGO_TARGET_DIR="$BUILD/cargo" \
        "$CARGO_163" build --quiet --offline --release "$@"
}

stage_sdk() {
    rm -rf "$STAGE/src"
    cp -r "$SDK/src" "$STAGE/src"
    cp "$SDK/Cargo.toml" "$STAGE/Cargo.toml"
    printf '\n[workspace]\n' >> "$STAGE/Cargo.toml"
    for example in $SDK_EXAMPLES; do
        rm -rf "$STAGE/examples/$example/src"
        mkdir -p "$STAGE/examples/$example"
        cp -r "$SDK/examples/$example/src" "$STAGE/examples/$example/src"
        cp "$SDK/examples/$example/Cargo.toml" "$STAGE/examples/$example/Cargo.toml"
    done
}

build_sdk_examples() {
    for example in $SDK_EXAMPLES; do
        (cd "$STAGE/examples/$example" && debian_cargo --target wasm32-wasi)
        cp "$BUILD/cargo/wasm32-wasi/release/hook_$example.wasm" "$OUT/$example.wasm"
    done
    # The SDK also targets plain wasm32 (no WASI): prove it with one example.
    (cd "$STAGE/examples/add_header" && debian_cargo --target wasm32-unknown-unknown)
    cp "$BUILD/cargo/wasm32-unknown-unknown/release/hook_add_header.wasm" \
        "$OUT/add_header_unknown.wasm"
}

build_official_example() {
    (cd "$SDK/examples/proxy_wasm_official" && debian_cargo --locked --target wasm32-wasi)
    cp "$BUILD/cargo/wasm32-wasi/release/proxy_wasm_official.wasm" "$OUT/proxy_wasm_official.wasm"
}

build_assemblyscript_example() {
    dir="$SDK/examples/assemblyscript"
    stamp="$dir/node_modules/.hoody-lock-stamp"
    if [ ! -f "$stamp" ] || ! cmp -s "$stamp" "$dir/package-lock.json"; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$dir/package-lock.json" "$stamp"
    fi
    (cd "$dir" && npx --no-install asc assembly/index.ts --target release \
        --outFile "$OUT/as_tag.wasm")
}

stage_sdk
build_sdk_examples
build_official_example
if [ "${HOOKS_SKIP_AS:-0}" != 1 ]; then
    build_assemblyscript_example
fi
ls "$OUT"
