#!/usr/bin/env bash
# Installs the disclvlm package (python/disclvlm/) with this build tree's
# libdisclvlm.so.1 into a fresh virtual environment, laid out as the wheel
# installs it (site-packages/disclvlm/_lib/libdisclvlm.so.1, _version.py),
# and runs the pytest suite in tests/python/ against it (not the source
# tree): the embeddings must equal the `disclvlm encode-image/encode-text`
# CLI's, errors must arrive as exceptions with the library's message, 1000
# create/free cycles must not grow the RSS.
#
# The package is copied in, not built as a wheel: building the wheel
# compiles the library again (pyproject.toml, meson-python), which this
# test, run on every `meson test`, need not pay for. tests/python/wheel_ci.sh
# (CI) builds, repairs and tests the real wheel.
#
# usage: run_python_tests.sh BUILD_ROOT SOURCE_ROOT
#
# Needs `python3 -m venv` (Debian: python3-venv) and either pip access to
# PyPI (or PIP_INDEX_URL) for numpy and pytest, or those modules in python3
# itself (Debian: python3-numpy python3-pytest), used through
# --system-site-packages. Without them it skips (exit 77) saying why, unless
# DISCLVLM_REQUIRE_PYTHON_TESTS=1 (CI), where a skip is a failure.
# PYTHON3 picks the interpreter (default: python3 on PATH).
set -euo pipefail
build_root=$(cd "$1" && pwd)
src_root=$(cd "$2" && pwd)
py=${PYTHON3:-python3}
work="$build_root/python-package"
lib="$build_root/lib/libdisclvlm.so.1"
version_py="$build_root/python/_version.py"

skip() {
  echo "SKIP: $*"
  if [ "${DISCLVLM_REQUIRE_PYTHON_TESTS:-0}" = 1 ]; then
    echo "DISCLVLM_REQUIRE_PYTHON_TESTS=1: a skip is a failure"
    exit 1
  fi
  exit 77
}

[ -e "$lib" ] || { echo "no $lib: build the library first"; exit 1; }
[ -e "$version_py" ] || { echo "no $version_py: reconfigure the build"; exit 1; }
command -v "$py" >/dev/null || skip "no $py"

rm -rf "$work"
mkdir -p "$work"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset DISCLVLM_LIBRARY PYTHONPATH

# 1. A fresh environment with numpy and pytest from PyPI; offline, the
# system's (Debian: python3-numpy python3-pytest) through
# --system-site-packages.
site=()
if ! "$py" -m venv "$work/venv-test" >"$work/venv.log" 2>&1; then
  cat "$work/venv.log"
  skip "'$py -m venv' failed: install python3-venv (Debian) to run the Python binding tests"
fi
if ! "$work/venv-test/bin/python" -m pip install -q numpy pytest >"$work/pip-test.log" 2>&1; then
  tail -3 "$work/pip-test.log"
  if "$py" -c 'import numpy, pytest' 2>/dev/null; then
    echo "pip cannot reach an index: using the system's numpy and pytest"
    site=(--system-site-packages)
    rm -rf "$work/venv-test"
    "$py" -m venv "${site[@]}" "$work/venv-test"
  else
    skip "pip could not install numpy and pytest (no network or index?), and $py lacks them"
  fi
fi
if [ ${#site[@]} -eq 0 ]; then
  # Pillow is optional for the package; with it the PIL.Image input is tested too.
  "$work/venv-test/bin/python" -m pip install -q Pillow >/dev/null 2>&1 ||
    echo "note: Pillow could not be installed; the PIL.Image test will skip"
fi
"$work/venv-test/bin/python" -c 'import numpy' ||
  { echo "numpy is missing from the test environment"; exit 1; }

# 2. The package, where the wheel puts it: python/meson.build lists the
# files the wheel installs, lib/meson.build where the library goes.
pkg=$("$work/venv-test/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')/disclvlm
mkdir -p "$pkg/_lib"
cp "$src_root"/python/disclvlm/*.py "$src_root/python/disclvlm/py.typed" "$version_py" "$pkg/"
cp -L "$lib" "$pkg/_lib/libdisclvlm.so.1"
echo "installed the package with $lib into $pkg"

# 3. The tests, run from outside the source tree so that `import disclvlm`
# finds the installed package.
export DISCLVLM_CLI="$build_root/disclvlm/disclvlm"
export DISCLVLM_GEN_TINY="$src_root/tests/gen_tiny_checkpoint.py"
export DISCLVLM_TEST_DATA="$src_root/tests/image/data"
export DISCLVLM_BENCH="$src_root/bench/bench_python.py"
export DISCLVLM_INCLUDE="$src_root/include"
export DISCLVLM_EXPECT_BUNDLED=1
cd "$work"
"$work/venv-test/bin/python" -m pytest -q -p no:cacheprovider -rs "$src_root/tests/python"
