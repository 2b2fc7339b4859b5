#!/usr/bin/env python3
"""Mutation testing for libdisclvlm: how strong is the test suite?

Plants one small bug at a time (tests/mutation/mutations.json) in a scratch
copy of the repository, rebuilds, runs the test suite and records whether a
test failed ("killed") or everything passed ("survived"). A survivor is a
bug the suite cannot see. Standard library only; see tests/mutation/README.md.

    python3 tests/mutation/run.py --list
    python3 tests/mutation/run.py --dry-run            # every mutant applies and compiles
    python3 tests/mutation/run.py --only ID,ID,...     # a few mutants
    python3 tests/mutation/run.py                      # the whole campaign (about an hour)

Exit status: 0 when every valid mutant was killed (dry run: when every mutant
compiled), 1 otherwise, 2 when the campaign could not run (a mutation whose
original text is not found exactly once, a failed setup or build).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_MUTATIONS = HERE / "mutations.json"
MARKER = ".disclvlm-mutation"

# meson's result names; anything else (FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS,
# INTERRUPT, ...) is a failure, hence a kill.
PASSING = {"OK", "SKIP", "EXPECTEDFAIL"}
REQUIRED_FIELDS = ("id", "layer", "description", "file", "original", "replacement")


class CampaignError(Exception):
    """Something that makes the whole campaign meaningless: stop loudly."""


# ---------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------

def load_mutations(path):
    """The mutation list, with its fields checked (not yet against the sources)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    mutations = doc["mutations"] if isinstance(doc, dict) else doc
    seen = set()
    for i, m in enumerate(mutations):
        missing = [k for k in REQUIRED_FIELDS if not isinstance(m.get(k), str)]
        if missing:
            raise CampaignError(f"{path}: mutation #{i} ({m.get('id', '?')}): missing or "
                                f"non-string field(s) {', '.join(missing)}")
        if m["id"] in seen:
            raise CampaignError(f"{path}: duplicate id {m['id']}")
        if m["original"] == m["replacement"]:
            raise CampaignError(f"{path}: {m['id']}: replacement equals the original")
        if not m["original"]:
            raise CampaignError(f"{path}: {m['id']}: empty original text")
        seen.add(m["id"])
        m.setdefault("tests", [])
    return mutations


def select_mutations(mutations, only):
    """The mutations named by --only (in the file's order), or all of them."""
    if not only:
        return mutations
    wanted = [s.strip() for s in only.split(",") if s.strip()]
    known = {m["id"] for m in mutations}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise CampaignError(f"--only: unknown mutation id(s): {', '.join(unknown)}")
    return [m for m in mutations if m["id"] in wanted]


def mutated_text(text, m):
    """text with m applied; the original must occur exactly once, so that the
    mutation is unambiguous and a stale mutations.json is caught."""
    count = text.count(m["original"])
    if count != 1:
        raise CampaignError(f"{m['id']}: the original text occurs {count} times in {m['file']} "
                            f"(must be exactly once); update tests/mutation/mutations.json:\n"
                            f"    {m['original']!r}")
    return text.replace(m["original"], m["replacement"], 1)


def read_source(path):
    # newline="": the text exactly as stored (no CRLF translation), so that
    # restoring a file gives back the same bytes.
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def write_source(path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def check_all_apply(src, mutations):
    """Every selected mutation applies to the copy, before any time is spent."""
    for m in mutations:
        path = src / m["file"]
        if not path.is_file():
            raise CampaignError(f"{m['id']}: {m['file']} does not exist")
        mutated_text(read_source(path), m)


class Applied:
    """Context manager: the mutant is in the file inside the block; the
    original is written back on the way out, whatever happens (an exception,
    Ctrl-C), so the scratch copy never keeps a bug."""

    def __init__(self, src, m):
        self.path = src / m["file"]
        self.m = m
        self.original = None

    def __enter__(self):
        self.original = read_source(self.path)
        write_source(self.path, mutated_text(self.original, self.m))
        return self

    def __exit__(self, *exc):
        write_source(self.path, self.original)
        return False


# ---------------------------------------------------------------------------
# The scratch copy and its build
# ---------------------------------------------------------------------------

def repository_files(repo):
    """Tracked files and untracked files that git does not ignore: what a
    user's clone (plus their uncommitted work) holds, without build folders."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "-c", "-o",
                          "--exclude-standard"], check=True, capture_output=True).stdout
    names = sorted({n for n in out.decode("utf-8", "surrogateescape").split("\0") if n})
    # A tracked file deleted in the working tree is still listed.
    return [n for n in names if (repo / n).is_file()]


def prepare_scratch(path):
    """The scratch directory: a new one under /tmp, or the one given, which
    must be outside the repository (the copy stands for a user's clone) and
    either new or made by an earlier run (a marker file says so), since
    stale files in SCRATCH/src are deleted."""
    if path is None:
        scratch = Path(tempfile.mkdtemp(prefix="disclvlm-mutation-"))
    else:
        scratch = path.resolve()
        if scratch == REPO or REPO in scratch.parents:
            raise CampaignError(f"--scratch {scratch}: must be outside the repository")
        if scratch.exists() and any(scratch.iterdir()) and not (scratch / MARKER).is_file():
            raise CampaignError(f"--scratch {scratch}: exists, is not empty and was not made "
                                f"by this script (no {MARKER}); choose a new directory")
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / MARKER).write_text("scratch directory of tests/mutation/run.py\n")
    return scratch


def sync_copy(repo, src):
    """src mirrors the repository's files. Files whose content is unchanged are
    left alone, so that a kept build (--keep) does not rebuild everything;
    files that are no longer in the repository are removed."""
    names = repository_files(repo)
    wanted = set(names)
    copied = 0
    for name in names:
        a, b = repo / name, src / name
        data = a.read_bytes()
        if b.is_file() and b.read_bytes() == data:
            continue
        b.parent.mkdir(parents=True, exist_ok=True)
        b.write_bytes(data)
        shutil.copymode(a, b)
        copied += 1
    for path in sorted(src.rglob("*"), reverse=True):
        rel = path.relative_to(src).as_posix()
        if path.is_file() and rel not in wanted:
            path.unlink()
    return len(names), copied


def build_env():
    """The environment ./run builds with: the CUDA toolkit through nvcc on PATH."""
    env = dict(os.environ)
    if Path("/usr/local/cuda/bin").is_dir():
        env["PATH"] = env.get("PATH", "") + os.pathsep + "/usr/local/cuda/bin"
    return env


def run_cmd(cmd, cwd=None, verbose=False):
    """(returncode, combined output); the output is echoed only with -v."""
    p = subprocess.run(cmd, cwd=cwd, env=build_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, errors="replace")
    if verbose:
        sys.stdout.write(p.stdout)
    return p.returncode, p.stdout


def configure(src, build, verbose):
    """One meson build, with ./run's options (none: the project defaults)."""
    if (build / "build.ninja").is_file():
        return
    rc, out = run_cmd(["meson", "setup", str(build)], cwd=src, verbose=verbose)
    if rc != 0:
        raise CampaignError(f"meson setup failed:\n{tail(out)}")


def compile_build(build, verbose):
    """(ok, output): ninja on the build, which rebuilds what the mutant touched."""
    rc, out = run_cmd(["ninja", "-C", str(build)], verbose=verbose)
    return rc == 0, out


def tail(text, n=40):
    return "\n".join(text.rstrip().splitlines()[-n:])


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

# A test: its first suite (meson's --suite selects by it), its name, and all
# its suites (a test may be in several: ['vision', 'assets']), without the
# project prefix ("train", not "disclvlm:train").
Test = namedtuple("Test", "suite name suites")


def list_tests(build):
    """[Test] in definition order."""
    rc, out = run_cmd(["meson", "introspect", str(build), "--tests"])
    if rc != 0:
        raise CampaignError(f"meson introspect --tests failed:\n{tail(out)}")
    tests = []
    for t in json.loads(out):
        suites = tuple(s.split(":", 1)[-1] for s in t["suite"]) or ("",)
        tests.append(Test(suites[0], t["name"], suites))
    return tests


def key(test):
    return f"{test.suite}/{test.name}"


def test_of_log_name(text, tests):
    """The Test behind a name in meson's JSON log: "project:suite1+suite2 /
    name", or just "name" when the whole project has a single suite."""
    suites, sep, name = text.rpartition(" / ")
    first = suites.split(":", 1)[-1].split("+")[0] if sep else None
    for t in tests:
        if t.name == name and (first is None or t.suite == first):
            return t
    return Test(first or "", name, (first or "",))


def resolve_hints(hints, tests):
    """The tests a mutation's "tests" entries name, in that order, without
    repeats. An entry is a suite ("train"), a test name ("learning") or
    suite/name ("image/api", for a name two suites share)."""
    ordered, unknown = [], []
    for h in hints:
        if "/" in h:
            hits = [t for t in tests if key(t) == h]
        else:
            hits = [t for t in tests if h in t.suites] or [t for t in tests if t.name == h]
        if not hits:
            unknown.append(h)
        ordered += [t for t in hits if t not in ordered]
    return ordered, unknown


def meson_test(build, args, tests, verbose):
    """Runs meson test; returns [(Test, result, seconds, stdout)] from meson's
    JSON log, in the order the tests finished, meson's exit status and its
    output."""
    log = build / "meson-logs" / "mutation.json"
    if log.exists():
        log.unlink()
    cmd = ["meson", "test", "-C", str(build), "--no-rebuild", "--print-errorlogs",
           "--logbase", "mutation"] + args
    rc, out = run_cmd(cmd, verbose=verbose)
    results = []
    if log.exists():
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            r = json.loads(line)
            results.append((test_of_log_name(r["name"], tests), r["result"],
                            float(r.get("duration") or 0.0), r.get("stdout") or ""))
    return results, rc, out


def run_baseline(build, tests, verbose):
    """The whole suite on the unmutated build. A test that fails here would
    'kill' every mutant, so it is left out of the campaign (and reported)."""
    results, rc, out = meson_test(build, [], tests, verbose)
    if not results:
        raise CampaignError(f"the baseline test run produced no results:\n{tail(out)}")
    status = {test: result for test, result, _, _ in results}
    durations = {test: secs for test, _, secs, _ in results}
    broken = [t for t in tests if status.get(t, "MISSING") not in PASSING]
    skipped = [t for t in tests if status.get(t) == "SKIP"]
    return broken, skipped, durations


def test_plan(likely, active, all_tests):
    """The meson runs for one mutant, in order: [(meson test arguments, the
    tests that run counts)]. First the likely tests one at a time, so the
    first failure stops the mutant early. Then every other active test: those
    with a name of their own in one parallel run that stops at its first
    failure (meson selects by name only), those whose name another suite
    shares (api/api and vision/api) one at a time with their suite."""
    plan = [(["--suite", t.suite, t.name], {t}) for t in likely]
    rest = [t for t in active if t not in likely]
    names = [t.name for t in all_tests]
    shared = {n for n in names if names.count(n) > 1}
    batch = [t for t in rest if t.name not in shared]
    if batch:
        plan.append((["--maxfail", "1"] + [t.name for t in batch], set(batch)))
    plan += [(["--suite", t.suite, t.name], {t}) for t in rest if t.name in shared]
    return plan


def run_tests_for_mutant(build, plan, tests, verbose):
    """Runs the plan until a test that counts fails. Returns (failure or None,
    number of tests run); a failure is (test, meson's result, its output), or
    (test, "HARNESS", meson's output) when meson failed with no failing test.
    None means the mutant survived every run: the whole active suite."""
    n_run = 0
    for args, counted in plan:
        results, rc, out = meson_test(build, args, tests, verbose)
        n_run += len(results)
        for test, result, _, stdout in results:
            if result not in PASSING and test in counted:
                return (test, result, stdout), n_run
        if rc != 0 and all(result in PASSING for _, result, _, _ in results):
            return (next(iter(counted)) if len(counted) == 1 else None, "HARNESS",
                    tail(out)), n_run
    return None, n_run


# ---------------------------------------------------------------------------
# The campaign
# ---------------------------------------------------------------------------

def assets_note(src):
    """Where the copy's tests look for ../shared/assets, and whether it exists."""
    assets = (src.parent / "shared" / "assets").resolve()
    if assets.is_dir():
        return (f"NOTE: {assets} exists: tests that need the shared assets run here, "
                f"unlike in a user's clone or CI.")
    return (f"NOTE: the scratch copy has no ../shared/assets ({assets}), as in a user's "
            f"clone or CI: tests that need those assets skip, so they kill nothing.")


def print_row(i, n, rec):
    killer = rec["killed_by"] or "-"
    note = ""
    if "build_seconds" in rec:
        runs = rec["tests_run"]
        note = (f"  (build {rec['build_seconds']:.0f} s, {runs} test"
                f"{'s' if runs != 1 else ''} run)")
    print(f"[{i:>2}/{n}] {rec['id']:<40} {rec['result']:<9} {killer:<28} "
          f"{rec['seconds']:7.1f} s{note}", flush=True)


def write_report(path, report):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def mutant_record(m, result, secs, killer=None, why="", output=""):
    return {"id": m["id"], "layer": m["layer"], "file": m["file"],
            "description": m["description"], "result": result,
            "killed_by": key(killer) if killer else None, "failure": why,
            "seconds": round(secs, 1), "output_tail": tail(output, 30) if output else ""}


def run_mutant(args, m, src, build, active, all_tests):
    """Apply, rebuild, test, restore: one mutant's record."""
    t0 = time.time()
    likely, unknown = resolve_hints(m["tests"], active)
    if unknown:
        print(f"WARNING: {m['id']}: no test or suite named {', '.join(unknown)}", flush=True)
    with Applied(src, m):
        ok, out = compile_build(build, args.verbose)
        if not ok:
            return mutant_record(m, "invalid", time.time() - t0, why="does not compile",
                                 output=out)
        if args.dry_run:
            return mutant_record(m, "compiles", time.time() - t0)
        build_s = time.time() - t0
        plan = test_plan(likely, active, all_tests)
        fail, n_run = run_tests_for_mutant(build, plan, all_tests, args.verbose)
    secs = time.time() - t0
    if fail is None:
        rec = mutant_record(m, "survived", secs)
    elif fail[1] == "HARNESS":
        rec = mutant_record(m, "error", secs, fail[0],
                            "meson test failed without a failing test", fail[2])
    else:
        rec = mutant_record(m, "killed", secs, fail[0], fail[1], fail[2])
    rec["tests_run"] = n_run
    rec["build_seconds"] = round(build_s, 1)
    return rec


def campaign(args, mutations, src, build, report_path):
    """Runs the mutants; returns the report (also written after each mutant,
    so an interrupted campaign leaves its partial results)."""
    tests = list_tests(build)
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "scratch": str(src.parent),
              "dry_run": args.dry_run, "assets": assets_note(src), "mutants": []}
    active = tests
    if not args.dry_run and not args.no_baseline:
        print("baseline: the whole suite on the unmutated build ...", flush=True)
        t0 = time.time()
        broken, skipped, durations = run_baseline(build, tests, args.verbose)
        print(f"baseline: {len(tests)} tests in {time.time() - t0:.0f} s, "
              f"{len(skipped)} skipped ({', '.join(map(key, skipped)) or 'none'})", flush=True)
        if broken:
            print(f"WARNING: {len(broken)} test(s) fail without any mutant and are left out: "
                  f"{', '.join(map(key, broken))}", flush=True)
        active = [t for t in tests if t not in broken]
        report["baseline"] = {"broken": [key(t) for t in broken],
                              "skipped": [key(t) for t in skipped],
                              "seconds": {key(t): round(s, 1) for t, s in durations.items()}}
    for i, m in enumerate(mutations, 1):
        rec = run_mutant(args, m, src, build, active, tests)
        print_row(i, len(mutations), rec)
        report["mutants"].append(rec)
        write_report(report_path, report)
    return report


def summarize(report):
    """Prints the score and the lists that need attention; returns the exit
    status: a dry run fails on an invalid mutant, a campaign on a survivor, a
    harness error, or when no mutant was valid."""
    recs = report["mutants"]
    by = {r: [m for m in recs if m["result"] == r]
          for r in ("killed", "survived", "invalid", "error", "compiles")}
    print()
    print(report["assets"])
    if report["dry_run"]:
        print(f"dry run: {len(by['compiles'])} of {len(recs)} mutants apply and compile, "
              f"{len(by['invalid'])} invalid")
    else:
        valid = len(by["killed"]) + len(by["survived"])
        score = 100.0 * len(by["killed"]) / valid if valid else 0.0
        print(f"score: {len(by['killed'])} killed / {valid} valid = {score:.1f}%  "
              f"({len(by['invalid'])} invalid, {len(by['error'])} errors)")
        if by["survived"]:
            print("survivors (bugs the suite does not catch):")
            for m in by["survived"]:
                print(f"  {m['id']} [{m['layer']}, {m['file']}]: {m['description']}")
    for m in by["invalid"]:
        print(f"invalid: {m['id']} ({m['file']}) does not compile:\n{m['output_tail']}")
    for m in by["error"]:
        print(f"error: {m['id']}: {m['failure']}\n{m['output_tail']}")
    if report["dry_run"]:
        return 1 if by["invalid"] else 0
    no_evidence = not by["killed"] and not by["survived"]
    return 1 if by["survived"] or by["error"] or no_evidence else 0


def print_list(mutations):
    for m in mutations:
        print(f"{m['id']:<40} {m['layer']:<13} {m['file']}")
        print(f"{'':<40} {m['description']}")
    counts = {}
    for m in mutations:
        counts[m["layer"]] = counts.get(m["layer"], 0) + 1
    print(f"\n{len(mutations)} mutants: " +
          ", ".join(f"{layer} {c}" for layer, c in counts.items()))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mutations", type=Path, default=DEFAULT_MUTATIONS,
                   help="the mutation list (default: %(default)s)")
    p.add_argument("--only", help="comma-separated mutation ids to run")
    p.add_argument("--list", action="store_true", help="print the mutations and exit")
    p.add_argument("--dry-run", action="store_true",
                   help="apply and compile each mutant, run no tests")
    p.add_argument("--scratch", type=Path,
                   help="scratch directory (default: a new one under $TMPDIR or /tmp); the "
                        "copy goes to SCRATCH/src, the build to SCRATCH/build, and an "
                        "existing kept one is reused")
    p.add_argument("--keep", action="store_true",
                   help="keep the scratch copy and build (default: delete them, keep the "
                        "report)")
    p.add_argument("--report", type=Path, help="JSON report (default: SCRATCH/report.json)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the unmutated run of the whole suite (assume it passes)")
    p.add_argument("-v", "--verbose", action="store_true", help="show ninja and meson output")
    return p.parse_args(argv)


def prepare_build(src, build, mutations, verbose):
    """The copy's build, unmutated, after checking that every mutation
    applies (a stale mutations.json fails before any time is spent)."""
    n_files, n_copied = sync_copy(REPO, src)
    print(f"copy: {n_files} files ({n_copied} written)", flush=True)
    print(assets_note(src), flush=True)
    check_all_apply(src, mutations)
    t0 = time.time()
    configure(src, build, verbose)
    ok, out = compile_build(build, verbose)
    if not ok:
        raise CampaignError(f"the unmutated copy does not build:\n{tail(out)}")
    print(f"build: {time.time() - t0:.0f} s", flush=True)


def main(argv):
    args = parse_args(argv)
    try:
        mutations = select_mutations(load_mutations(args.mutations), args.only)
        if args.list:
            print_list(mutations)
            return 0
        if not mutations:
            raise CampaignError("no mutations selected")
        scratch = prepare_scratch(args.scratch)
    except CampaignError as e:
        print(f"mutation: error: {e}", file=sys.stderr)
        return 2
    src, build = scratch / "src", scratch / "build"
    src.mkdir(exist_ok=True)
    report_path = (args.report or scratch / "report.json").resolve()
    print(f"scratch: {scratch}", flush=True)
    try:
        prepare_build(src, build, mutations, args.verbose)
        report = campaign(args, mutations, src, build, report_path)
    except CampaignError as e:
        print(f"mutation: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; the results so far are in {report_path}", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            # The last mutant's objects may still be in the build: bring it
            # back in line with the restored sources.
            if (build / "build.ninja").is_file():
                compile_build(build, args.verbose)
        else:
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(build, ignore_errors=True)
    status = summarize(report)
    print(f"report: {report_path}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
