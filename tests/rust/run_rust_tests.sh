#!/usr/bin/env bash
# The Rust bindings' tests (bindings/rust): `cargo test --offline --locked`
# against this build's libdisclvlm, with the `disclvlm` CLI of the same build
# as the C reference for the bitwise comparisons. Skips (exit 77) without
# cargo.
#
# usage: run_rust_tests.sh BUILD_ROOT SOURCE_ROOT TARGET_DIR DISCLVLM_EXE GEN_TINY_PY
#                          [B_SANITIZE [CC]]
set -euo pipefail
build_root=$(cd "$1" && pwd)
src_root=$(cd "$2" && pwd)
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
target_dir=$(abs "$3")
cli=$(abs "$4")
gen_tiny=$(abs "$5")
sanitize=${6:-none}
cc=${7:-${CC:-cc}}

if ! command -v cargo >/dev/null 2>&1; then
  for d in "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin" /root/.cargo/bin; do
    if [ -x "$d/cargo" ]; then
      PATH="$PATH:$d"
      break
    fi
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "SKIP: cargo not found (install Debian's cargo package or rustup)"
  # CI sets DISCLVLM_REQUIRE_RUST_TESTS=1: there a skip is a failure.
  [ "${DISCLVLM_REQUIRE_RUST_TESTS:-0}" = 1 ] && exit 1
  exit 77
fi
cargo --version
rustc --version

libdir="$build_root/lib"
[ -e "$libdir/libdisclvlm.so" ] || { echo "no $libdir/libdisclvlm.so"; exit 1; }

export DISCLVLM_LIB_DIR="$libdir"
export DISCLVLM_HEADER="$src_root/include/disclvlm.h"
export DISCLVLM_CLI="$cli"
export DISCLVLM_REQUIRE_CLI=1
export DISCLVLM_GEN_TINY="$gen_tiny"
export DISCLVLM_TEST_IMAGES="$src_root/tests/image/data"
export CARGO_TARGET_DIR="$target_dir"
# Never let a pkg-config answer or a stale library path pick another copy.
unset PKG_CONFIG_PATH LD_LIBRARY_PATH

# In a sanitizer build, libdisclvlm.so needs the ASan runtime loaded first:
# the test programs run through a runner that preloads it (cargo and rustc
# themselves must not run with it). LeakSanitizer then checks the whole
# process, Rust allocations included, at exit.
if [[ "$sanitize" == *address* ]]; then
  libasan=$("$cc" -print-file-name=libasan.so)
  [ -e "$libasan" ] || { echo "cannot find libasan.so ($cc -print-file-name)"; exit 1; }
  triple=$(rustc -vV | sed -n 's/^host: //p')
  var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUNNER"
  mkdir -p "$target_dir"
  runner="$target_dir/asan-runner.sh"
  printf '#!/bin/sh\nLD_PRELOAD=%s exec "$@"\n' "$libasan" > "$runner"
  chmod +x "$runner"
  export "$var=$runner"
  echo "ASan runner: $var=$runner (LD_PRELOAD=$libasan)"
fi

cd "$src_root/bindings/rust"
# The doc tests are compile-only (no_run, compile_fail) and need no runner.
cargo test --offline --locked --workspace
