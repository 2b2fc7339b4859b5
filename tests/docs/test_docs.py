#!/usr/bin/env python3
"""The documentation stands alone (issue 15): README.md, docs/*.md and the
bindings' READMEs name no file outside the repository ("../shared/...",
or a relative link that leaves the checkout), every relative link points at
a file or folder that exists, docs/bindings.md links the Rust crates, and the
README says what to expect from a 7B model on a CPU.

usage: test_docs.py SOURCE_ROOT
"""
import glob
import os
import re
import sys

root = os.path.realpath(sys.argv[1])
files = ([os.path.join(root, "README.md"), os.path.join(root, "CHANGELOG.md")]
         + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
         + sorted(glob.glob(os.path.join(root, "bindings", "*", "README.md")))
         + [os.path.join(root, "python", "README.md")])
failures = []
LINK = re.compile(r"\]\(([^)\s]+)\)")
OUTSIDE = re.compile(r"\.\./shared\b|(?<![\w.])\.\./\.\./\.\./")

for path in files:
    rel = os.path.relpath(path, root)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for n, line in enumerate(text.split("\n"), 1):
        if OUTSIDE.search(line) and rel != "CHANGELOG.md":
            failures.append("%s:%d names a file outside the repository: %s" % (rel, n, line.strip()))
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            dest = os.path.realpath(os.path.join(os.path.dirname(path), target.split("#")[0]))
            if not (dest == root or dest.startswith(root + os.sep)):
                failures.append("%s:%d links outside the repository: %s" % (rel, n, target))
            elif not os.path.exists(dest):
                failures.append("%s:%d links a missing file: %s" % (rel, n, target))

with open(os.path.join(root, "docs", "bindings.md"), encoding="utf-8") as f:
    bindings = f.read()
if "bindings/rust/README.md" not in bindings or "## Rust" not in bindings:
    failures.append("docs/bindings.md does not describe and link the Rust crates")
with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
    readme = f.read()
m = re.search(r"^## .*7B.*CPU.*$", readme, re.M)
if not m or not re.search(r"per image", readme) or not re.search(r"GiB|GB", readme[m.start():]):
    failures.append("README.md does not say what a 7B model costs on a CPU (a '## ... 7B ... "
                    "CPU' section with the time per image and text and the memory)")

for f in failures:
    print("FAIL " + f)
print("%d files checked, %d problems" % (len(files), len(failures)))
sys.exit(1 if failures else 0)
