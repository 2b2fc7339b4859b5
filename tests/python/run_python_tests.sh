#!/usr/bin/env bash
# Builds the disclvlm wheel (python/) around the build tree's libdisclvlm.so.1,
# installs it into a fresh virtual environment and runs the pytest suite in
# tests/python/ against the installed package (not the source tree): the
# embeddings must equal the `disclvlm encode-image/encode-text` CLI's, errors
# must arrive as exceptions with the library's message, 1000 create/free
# cycles must not grow the RSS.
#
# usage: run_python_tests.sh BUILD_ROOT SOURCE_ROOT
#
# Needs `python3 -m venv` (Debian: python3-venv) and either pip access to
# PyPI (or PIP_INDEX_URL) for numpy, pytest, setuptools and wheel, or those
# modules in python3 itself (Debian: python3-numpy python3-pytest
# python3-setuptools python3-wheel), used through --system-site-packages.
# Without them it skips (exit 77) saying why, unless
# DISCLVLM_REQUIRE_PYTHON_TESTS=1 (CI), where a skip is a failure.
# PYTHON3 picks the interpreter (default: python3 on PATH).
set -euo pipefail
build_root=$(cd "$1" && pwd)
src_root=$(cd "$2" && pwd)
py=${PYTHON3:-python3}
work="$build_root/python-wheel"
lib="$build_root/lib/libdisclvlm.so.1"

skip() {
  echo "SKIP: $*"
  if [ "${DISCLVLM_REQUIRE_PYTHON_TESTS:-0}" = 1 ]; then
    echo "DISCLVLM_REQUIRE_PYTHON_TESTS=1: a skip is a failure"
    exit 1
  fi
  exit 77
}

[ -e "$lib" ] || { echo "no $lib: build the library first"; exit 1; }
command -v "$py" >/dev/null || skip "no $py"

rm -rf "$work"
mkdir -p "$work"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset DISCLVLM_LIBRARY PYTHONPATH

# 1. A build environment with setuptools + wheel from PyPI; offline, the
# system's (Debian: python3-setuptools python3-wheel python3-numpy
# python3-pytest) through --system-site-packages.
site=()
if ! "$py" -m venv "$work/venv-build" >"$work/venv.log" 2>&1; then
  cat "$work/venv.log"
  skip "'$py -m venv' failed: install python3-venv (Debian) to run the Python binding tests"
fi
if ! "$work/venv-build/bin/python" -m pip install -q -U "setuptools>=70.1" wheel \
     >"$work/pip-build.log" 2>&1; then
  tail -3 "$work/pip-build.log"
  if "$py" -c 'import numpy, pytest, setuptools, wheel' 2>/dev/null; then
    echo "pip cannot reach an index: using the system's numpy, pytest, setuptools, wheel"
    site=(--system-site-packages)
    rm -rf "$work/venv-build"
    "$py" -m venv "${site[@]}" "$work/venv-build"
  else
    skip "pip could not install setuptools and wheel (no network or index?), and $py lacks numpy, pytest, setuptools or wheel"
  fi
fi

# 2. The wheel, from a copy of python/ (the source tree stays clean).
cp -r "$src_root/python" "$work/src"
rm -rf "$work/src/disclvlm/_lib/"*.so* "$work/src/build" "$work/src/"*.egg-info
DISCLVLM_BUNDLE_LIBRARY="$lib" "$work/venv-build/bin/python" -m pip wheel -q --no-deps \
  --no-build-isolation -w "$work/dist" "$work/src"
whl=$(ls "$work/dist"/disclvlm-*.whl)
echo "built $(basename "$whl") ($(du -k "$whl" | cut -f1) KiB)"
"$work/venv-build/bin/python" - "$whl" <<'PY'
import sys, zipfile, platform
whl = sys.argv[1]
name = whl.rsplit("/", 1)[-1]
assert name.startswith("disclvlm-0.1.0-py3-none-linux_"), "not a py3-none-linux platform wheel: " + name
assert name.endswith(platform.machine() + ".whl"), name
names = zipfile.ZipFile(whl).namelist()
for need in ("disclvlm/__init__.py", "disclvlm/_lib/libdisclvlm.so.1", "disclvlm/py.typed"):
    assert need in names, "%s not in the wheel: %s" % (need, names)
wheel_meta = [n for n in names if n.endswith(".dist-info/WHEEL")][0]
meta = zipfile.ZipFile(whl).read(wheel_meta).decode()
assert "Root-Is-Purelib: false" in meta, meta
print("wheel contents OK:", ", ".join(n for n in names if n.startswith("disclvlm/")))
PY

# 3. A fresh environment with only the wheel, numpy and pytest.
"$py" -m venv "${site[@]}" "$work/venv-test"
if [ ${#site[@]} -eq 0 ]; then
  if ! "$work/venv-test/bin/python" -m pip install -q numpy pytest >"$work/pip-test.log" 2>&1; then
    tail -3 "$work/pip-test.log"
    skip "pip could not install numpy and pytest (no network or index?)"
  fi
  # Pillow is optional for the package; with it the PIL.Image input is tested too.
  "$work/venv-test/bin/python" -m pip install -q Pillow >/dev/null 2>&1 ||
    echo "note: Pillow could not be installed; the PIL.Image test will skip"
fi
"$work/venv-test/bin/python" -m pip install -q --no-deps --no-index "$whl"
"$work/venv-test/bin/python" -c 'import numpy' ||
  { echo "numpy is missing from the test environment"; exit 1; }

# 4. The tests, run from outside the source tree so that `import disclvlm`
# finds the installed package.
export DISCLVLM_CLI="$build_root/disclvlm/disclvlm"
export DISCLVLM_GEN_TINY="$src_root/tests/gen_tiny_checkpoint.py"
export DISCLVLM_TEST_DATA="$src_root/tests/image/data"
export DISCLVLM_BENCH="$src_root/bench/bench_python.py"
export DISCLVLM_INCLUDE="$src_root/include"
export DISCLVLM_EXPECT_BUNDLED=1
cd "$work"
"$work/venv-test/bin/python" -m pytest -q -p no:cacheprovider -rs "$src_root/tests/python"
