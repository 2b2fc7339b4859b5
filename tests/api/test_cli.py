#!/usr/bin/env python3
"""The disclvlm tool's global behaviour: --help, --version, usage errors, and
the exit-code contract (0 ok, 1 failure with one stderr line, 2 bad usage).

usage: test_cli.py DISCLVLM_EXE MODEL_DIR EXPECTED_VERSION
"""
import subprocess
import sys

exe, model_dir, version = sys.argv[1:4]
failures = []


def run(*args):
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


rc, out, err = run("--version")
check(rc == 0 and out.startswith(f"disclvlm {version} ") and "cpu" in out, "--version names the version and backends")
rc, out, err = run("--help")
check(rc == 0 and "info" in out and "usage:" in out and err == "", "--help lists the commands on stdout")
rc, out, err = run()
check(rc == 2 and "usage:" in err and out == "", "no command: usage on stderr, exit 2")
rc, out, err = run("frobnicate")
check(rc == 2 and "frobnicate" in err and len(err.strip().splitlines()) == 1, "unknown command: one line naming it, exit 2")
rc, out, err = run("info", "--help")
check(rc == 0 and "MODEL_DIR" in out, "info --help")
rc, out, err = run("info")
check(rc == 2 and out == "", "info without a directory: exit 2")
rc, out, err = run("info", "--bogus", model_dir)
check(rc == 2 and "--bogus" in err, "info with an unknown option: exit 2 naming it")
rc, out, err = run("info", "--backend", "tpu", model_dir)
check(rc == 1 and "tpu" in err and len(err.strip().splitlines()) == 1 and out == "", "unknown backend: exit 1, one line naming it")
rc, out, err = run("info", "--backend", "cuda", model_dir)
# With a GPU this succeeds; without one (or without CUDA in the build) it
# must fail cleanly with one line that mentions CUDA.
check((rc == 0 and '"embedding_size"' in out) or (rc == 1 and "CUDA" in err and len(err.strip().splitlines()) == 1),
      "info --backend cuda: works, or one clear line about CUDA")
rc, out, err = run("info", "--backend", "auto", model_dir)
check(rc == 0 and '"embedding_size"' in out, "info --backend auto falls back to what exists")

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
