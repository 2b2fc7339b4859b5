#!/usr/bin/env python3
"""ABI guard: the shared library must export exactly the committed symbol
list, every export must carry the DISCLVLM_<major> version node, the SONAME
must carry the ABI major, and every DLV_API function declared in the public
header must be in the list (so a declared-but-missing function fails too).

usage: check_exports.py LIBRARY HEADER SYMBOL_LIST ABI_MAJOR
To accept an intended change, regenerate the list:
  nm -D --defined-only build/lib/libdisclvlm.so | awk '{print $3}' | sed 's/@.*//' | sort
"""
import re
import subprocess
import sys


def main():
    lib, header, listing, abi_major = sys.argv[1:5]
    nm = subprocess.run(["nm", "-D", "--defined-only", "--with-symbol-versions", lib],
                        check=True, capture_output=True, text=True).stdout
    exported = {}
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        name, _, version = parts[2].partition("@")
        exported[name] = version.lstrip("@")
    # The version node's own marker symbol is not part of the API.
    exported.pop("DISCLVLM_" + abi_major, None)

    with open(listing) as f:
        expected = {ln.strip() for ln in f if ln.strip() and not ln.startswith("#")}
    with open(header) as f:
        declared = set(re.findall(r"DLV_API\s+[^;(]*?\b(dlv_\w+)\s*\(", f.read()))

    errors = []
    for s in sorted(set(exported) - expected):
        errors.append(f"exported but not in {listing}: {s}")
    for s in sorted(expected - set(exported)):
        errors.append(f"in {listing} but not exported: {s}")
    for s in sorted(declared - expected):
        errors.append(f"declared DLV_API in the header but not in the list: {s}")
    for s in sorted(expected - declared):
        errors.append(f"in the list but not declared DLV_API in the header: {s}")
    for s, v in sorted(exported.items()):
        if s in expected and v != "DISCLVLM_" + abi_major:
            errors.append(f"{s} has symbol version '{v}', expected DISCLVLM_{abi_major}")

    dyn = subprocess.run(["objdump", "-p", lib], check=True, capture_output=True, text=True).stdout
    m = re.search(r"SONAME\s+(\S+)", dyn)
    if not m or m.group(1) != f"libdisclvlm.so.{abi_major}":
        errors.append(f"SONAME is {m.group(1) if m else 'missing'}, expected libdisclvlm.so.{abi_major}")

    for e in errors:
        print("ABI: " + e)
    print(f"{len(expected)} symbols expected, {len(exported)} exported, {len(declared)} declared")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
