#!/usr/bin/env bash
# Installs the build into a temporary root (meson install --destdir), then
# builds a C and a C++ program with nothing but pkg-config's answer for
# disclvlm and runs them against the installed shared library. Also checks
# that the installed files are where a packager expects them.
set -euo pipefail
build_root=$1
src_dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build_root" --no-rebuild --quiet --destdir "$tmp/root"

pcdir=$(dirname "$(find "$tmp/root" -name disclvlm.pc -print -quit)")
[ -n "$pcdir" ] && [ -f "$pcdir/disclvlm.pc" ] || { echo "disclvlm.pc was not installed"; exit 1; }
libdir=$(dirname "$pcdir")
for f in "$libdir/libdisclvlm.so.1" "$libdir/libdisclvlm.a"; do
  [ -e "$f" ] || { echo "missing installed file: $f"; exit 1; }
done
find "$tmp/root" -path '*/include/disclvlm.h' | grep -q . || { echo "header not installed"; exit 1; }
find "$tmp/root" -path '*/include/disclvlm.hpp' | grep -q . || { echo "C++ header not installed"; exit 1; }
find "$tmp/root" -path '*/bin/disclvlm' | grep -q . || { echo "disclvlm tool not installed"; exit 1; }

# The installed tool finds its library through its relative run path
# ($ORIGIN/../libdir), with no LD_LIBRARY_PATH: the install root stands for
# any non-system prefix, moved or not.
tool=$(find "$tmp/root" -path '*/bin/disclvlm' -print -quit)
deps_tool=$(env -u LD_LIBRARY_PATH ldd "$tool")
found=$(printf '%s\n' "$deps_tool" | awk '$1 == "libdisclvlm.so.1" { print $3 }')
if [ -z "$found" ] || [ "$(realpath "$found")" != "$(realpath "$libdir/libdisclvlm.so.1")" ]; then
  echo "installed disclvlm does not find the installed library"; echo "$deps_tool"; exit 1
fi
env -u LD_LIBRARY_PATH "$tool" --version

# disclvlm.pc names its prefix relative to itself (${pcfiledir}), so
# PKG_CONFIG_PATH alone gives -I/-L paths inside the install root, as the
# README tells users of a --prefix install.
export PKG_CONFIG_PATH="$pcdir"
unset PKG_CONFIG_SYSROOT_DIR
pc_libdir=$(pkg-config --variable=libdir disclvlm)
[ "$(realpath "$pc_libdir")" = "$(realpath "$libdir")" ] || {
  echo "disclvlm.pc libdir $pc_libdir is not the install's $libdir"; exit 1; }
flags=$(pkg-config --cflags --libs disclvlm)
echo "pkg-config --cflags --libs disclvlm: $flags"
pkg-config --modversion disclvlm

# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$src_dir/consumer.c" -o "$tmp/consumer_c" $flags
# shellcheck disable=SC2086
c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror "$src_dir/consumer.cpp" -o "$tmp/consumer_cpp" $flags
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$tmp/consumer_c"
"$tmp/consumer_cpp"

# The header-only C++ wrapper (disclvlm.hpp): a test program (C++11 and
# C++17) and the example of bindings/cpp, run on a tiny generated model.
for std in c++11 c++17; do
  # shellcheck disable=SC2086
  c++ -std=$std -Wall -Wextra -Wpedantic -Wshadow -Werror "$src_dir/consumer_hpp.cpp" \
    -o "$tmp/consumer_hpp_$std" $flags
done
# shellcheck disable=SC2086
c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror "$src_dir/../../bindings/cpp/example.cpp" \
  -o "$tmp/example_cpp" $flags
python3 "$src_dir/../gen_tiny_checkpoint.py" "$tmp/tiny" --vision clip --text llama \
  --with-tokenizer >/dev/null
image="$src_dir/../image/data/jpeg_420.jpg"
"$tmp/consumer_hpp_c++11" "$tmp/tiny" "$image"
"$tmp/consumer_hpp_c++17" "$tmp/tiny" "$image"
example_out=$("$tmp/example_cpp" "$tmp/tiny" "$image" -- "a cat" "a dog")
echo "$example_out"
[ "$(printf '%s\n' "$example_out" | wc -l)" -eq 2 ] || { echo "example: expected 2 lines"; exit 1; }
# The programs must have used the installed copy, not the build tree's.
# Capture ldd's output first: `ldd | grep -q` under pipefail fails when grep
# exits early and ldd gets SIGPIPE.
deps_c=$(ldd "$tmp/consumer_c")
case "$deps_c" in
  *"$libdir/libdisclvlm.so.1"*) ;;
  *) echo "consumer did not load the installed library"; echo "$deps_c"; exit 1 ;;
esac
# Static linking: the archive plus the private dependencies that
# `pkg-config --static` lists (resolved on the real system, not the sysroot).
cflags=$(pkg-config --cflags disclvlm)
# shellcheck disable=SC2046
static_deps=$(pkg-config --static --libs disclvlm | sed 's/-ldisclvlm\b//')
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror $cflags "$src_dir/consumer.c" -o "$tmp/consumer_static" "$libdir/libdisclvlm.a" $static_deps
deps_static=$(ldd "$tmp/consumer_static")
if [[ "$deps_static" == *libdisclvlm* ]]; then
  echo "static consumer still loads libdisclvlm.so"; exit 1
fi
"$tmp/consumer_static"
echo "install + pkg-config (shared and static): OK"
