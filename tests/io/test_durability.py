#!/usr/bin/env python3
"""The durability order of every atomic write the user gets, checked on the
calls themselves: the commands run under an LD_PRELOAD shim
(tests/io/fsorder_shim.c) that logs open / mkstemp / mkdtemp / write /
fsync / close / rename, and the log is checked:

* a file put in place by a rename: its temporary was fsynced after its last
  write and before the rename, not written after it, and the directory
  holding it was fsynced after the rename (through an fd opened on that
  directory; for a file inside a temporary directory, before that directory
  is itself swapped in, since its path then names something else);
* a directory swapped in (rename or renameat2 RENAME_EXCHANGE, or the two
  renames of the fallback): the temporary directory was fsynced after the
  last entry was made in it and before the swap, each file left in it was
  either renamed in (above) or fsynced in place, and the parent was fsynced
  after the swap.

Every rename in every log is checked, and each kind of save must be seen:
.npy outputs (absolute and cwd-relative --out), the eval cache, adapters,
training checkpoints and saved models (new, replaced by RENAME_EXCHANGE,
replaced by the fallback renames the shim forces with
DLV_FSORDER_NO_EXCHANGE=1), and a bare directory-level save holding a file
written in place (tests/io/fsorder_dirsave.c). A missing shim is a failure.

usage: test_durability.py DISCLVLM_EXE FSORDER_SHIM_SO FSORDER_DIRSAVE_EXE GEN_TINY_PY
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

exe, shim, dirsave, gen = (os.path.abspath(a) for a in sys.argv[1:5])
failures = []
O_CREAT = 0o100
RENAME_EXCHANGE = 2


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


if not os.path.isfile(shim):
    print("FAIL the shim %s is missing: nothing can be checked" % shim)
    sys.exit(1)


def png(path, w, h, pixel):
    raw = b"".join(b"\x00" + bytes(c for x in range(w) for c in pixel(x, y)) for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ---- The log -----------------------------------------------------------------

class Event:
    def __init__(self, i, fields):
        self.i = i
        self.pid, self.op = int(fields[0]), fields[1]
        self.res, self.fd = int(fields[2]), int(fields[3])
        self.p1 = os.path.normpath(fields[4]) if fields[4] else ""
        self.p2 = os.path.normpath(fields[5]) if fields[5] else ""
        self.extra = fields[6]


def read_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    return [Event(i, ln.split("\t")) for i, ln in enumerate(lines)]


def parent(p):
    return os.path.dirname(p)


def within(p, d):
    """p is d or below it."""
    return p == d or p.startswith(d.rstrip("/") + "/")


class Rename:
    """One successful rename and what the log says about its durability."""

    def __init__(self, e):
        self.i, self.src, self.dst = e.i, e.p1, e.p2
        kind, flags = e.extra.split()
        self.is_dir = kind == "d"
        self.flags = int(flags, 16)
        self.problems = []
        self.children = {}   # dir swaps: path of each entry -> how its data was made durable
        self.temp = None     # dir swaps: the mkdtemp directory swapped in


def analyse(events):
    """The renames of one process, each checked (Rename.problems)."""
    fdpath, fdopen = {}, {}          # fd -> path it was opened on, and when
    writes = {}                      # path -> [(event, when its fd was opened)]
    syncs = {}                       # path -> [events fsyncing an fd opened on it]
    made = {}                        # path -> event that created it
    changes = {}                     # directory -> events changing its entries
    entries = {}                     # directory -> paths of the entries made in it
    mkdtemps = set()
    renames = []
    end = events[-1].i + 1 if events else 0  # after every event of this process

    def change(d, i):
        changes.setdefault(d, []).append(i)

    for e in events:
        if e.op in ("open", "mkstemp") and e.res >= 0:
            fdpath[e.res], fdopen[e.res] = e.p1, e.i
            if e.op == "mkstemp" or int(e.extra, 16) & O_CREAT:
                made.setdefault(e.p1, e.i)
                change(parent(e.p1), e.i)
                entries.setdefault(parent(e.p1), set()).add(e.p1)
        elif e.op == "write" and e.res > 0 and e.fd in fdpath:
            writes.setdefault(fdpath[e.fd], []).append((e.i, fdopen[e.fd]))
        elif e.op == "fsync" and e.res == 0 and e.fd in fdpath:
            syncs.setdefault(fdpath[e.fd], []).append(e.i)
        elif e.op == "close":
            fdpath.pop(e.fd, None)  # the fd is gone even when close fails
        elif e.op == "mkdtemp" and e.res == 0:
            mkdtemps.add(e.p1)
            change(parent(e.p1), e.i)
        elif e.op == "rename" and e.res == 0:
            r = Rename(e)
            if r.is_dir:
                exchange = r.flags & RENAME_EXCHANGE
                r.temp = r.src if r.src in mkdtemps else (
                    r.dst if exchange and r.dst in mkdtemps else None)
                if r.temp:
                    r.children = {p: None for p in entries.get(r.temp, set())}
            renames.append(r)
            for d in {parent(r.src), parent(r.dst)}:
                change(d, e.i)
            entries.setdefault(parent(r.src), set()).discard(r.src)
            entries.setdefault(parent(r.dst), set()).add(r.dst)

    def synced(path, after, before):
        return [s for s in syncs.get(path, []) if after < s < before]

    def barrier(d, after):
        """When d (or a directory above it) is next renamed: later fsyncs
        through its old path would reach another directory."""
        return min([r.i for r in renames if r.i > after and
                    (within(d, r.src) or within(d, r.dst))] + [end])

    def dir_synced_after(r, what):
        for d in sorted({parent(r.dst), parent(r.src)}):
            b = barrier(d, r.i)
            if not synced(d, r.i, b):
                r.problems.append("%s: no fsync of its directory %s after the rename (event "
                                  "%d)%s" % (what, d, r.i,
                                             "" if b == end else
                                             " and before that directory moved (event %d)" % b))

    def data_synced(path, before, what, step):
        """path's data durable before event `before`: fsynced after its last
        write (or its creation) and not written afterwards through an fd
        opened earlier. Returns a problem or None."""
        ws = writes.get(path, [])
        done = [w for w, _ in ws if w < before]
        start = max(done) if done else made.get(path)
        if start is None:
            return "%s: the log never shows %s being created or written" % (what, path)
        if not synced(path, start, before):
            return ("%s: %s not fsynced between its last write (event %d) and %s (event %d)"
                    % (what, path, start, step, before))
        late = [w for w, opened in ws if w > before and opened < before]
        if late:
            return "%s: %s written again after event %d (event %d)" % (what, path, before, late[0])
        return None

    for r in renames:
        if not r.is_dir:
            p = data_synced(r.src, r.i, "rename to %s" % r.dst, "the rename")
            if p:
                r.problems.append(p)
            dir_synced_after(r, "rename to %s" % r.dst)
            continue
        if r.temp:
            made_in = [c for c in changes.get(r.temp, []) if c < r.i]
            start = max(made_in) if made_in else -1
            if not synced(r.temp, start, r.i):
                r.problems.append("swap of %s: the temporary directory %s not fsynced between "
                                  "its last new entry (event %d) and the swap (event %d)"
                                  % (r.dst, r.temp, start, r.i))
            for c in r.children:
                into = [f for f in renames if f.dst == c and f.i < r.i and not f.is_dir]
                if into:
                    r.children[c] = "renamed in" if not into[-1].problems else None
                    if into[-1].problems:
                        r.problems.append("swap of %s: %s was renamed in without durability"
                                          % (r.dst, os.path.basename(c)))
                else:
                    p = data_synced(c, r.i, "swap of %s" % r.dst, "the swap")
                    r.children[c] = "fsynced in place" if not p else None
                    if p:
                        r.problems.append(p)
        dir_synced_after(r, "swap of %s" % r.dst)
    return renames


def how(r, renames):
    """How a directory swap was done: a new directory renamed in, an
    existing one exchanged, or moved aside first (the fallback)."""
    if r.flags & RENAME_EXCHANGE:
        return "exchange"
    if any(x.src == r.dst and x.i < r.i for x in renames):
        return "fallback"
    return "new"


WAYS = {"new": "rename (new)", "exchange": "renameat2 RENAME_EXCHANGE",
        "fallback": "rename aside + rename (no RENAME_EXCHANGE)"}


# ---- Running the commands under the shim -------------------------------------

base = os.path.realpath(tempfile.mkdtemp(prefix="dlv-durability-"))
runs = 0


def traced(argv, cwd=None, no_exchange=False):
    """Runs argv under the shim; (returncode, stderr, renames by pid)."""
    global runs
    runs += 1
    log = os.path.join(base, "fsorder-%d.log" % runs)
    env = dict(os.environ)
    env["DLV_FSORDER_LOG"] = log
    env["LD_PRELOAD"] = shim + (" " + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    # A sanitizer build's runtime insists on coming first in the library
    # list, which a preloaded shim breaks; the order does not matter here.
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    if no_exchange:
        env["DLV_FSORDER_NO_EXCHANGE"] = "1"
    p = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    events = read_log(log)
    by_pid = {}
    for e in events:
        by_pid.setdefault(e.pid, []).append(e)
    renames = []
    for evs in by_pid.values():
        renames += analyse(evs)
    return p.returncode, p.stderr, renames, len(events)


def short(p):
    return os.path.relpath(p, base) if within(p, base) else p


seen = {}           # kind -> number of verified saves
all_problems = []   # (label, problem) over every rename of every run


def report(label, renames):
    """Every rename of a run is checked, expected or not."""
    for r in renames:
        for p in r.problems:
            all_problems.append((label, p))
            check(False, "%s: %s" % (label, p))


def verify(label, argv, expect, cwd=None, no_exchange=False):
    """Runs one command; expect: [(kind, final path, names the directory
    must hold (None: a file), the ways its swaps must have taken)]. Every
    rename in the log is checked; each expected output must have been put
    in place by renames that all passed, and a directory must hold exactly
    the files its last swap brought in."""
    rc, err, renames, n = traced(argv, cwd=cwd, no_exchange=no_exchange)
    if not check(rc == 0 and n > 0, "%s: exit 0, %d calls logged%s"
                 % (label, n, "" if rc == 0 else " " + err.strip()[-300:])):
        return []
    report(label, renames)
    for kind, path, names, ways in expect:
        mine = [r for r in renames if r.dst == path and r.is_dir == (names is not None)]
        if not check(bool(mine), "%s: %s %s put in place by a rename" % (label, kind, short(path))):
            continue
        if names is None:
            if check(not any(r.problems for r in mine),
                     "%s: %s %s: the temporary fsynced after its last write and before the "
                     "rename, the directory fsynced after it" % (label, kind, short(path))):
                seen[kind] = seen.get(kind, 0) + 1
            continue
        got = sorted(os.path.basename(c) for c in mine[-1].children)
        on_disk = sorted(os.listdir(path)) if os.path.isdir(path) else []
        done = [how(r, renames) for r in mine]
        durable = sorted({v for r in mine for v in r.children.values() if v})
        ok = (not any(r.problems for r in mine) and all(r.temp for r in mine)
              and set(names) <= set(got) and on_disk == got and sorted(set(done)) == sorted(ways))
        if check(ok, "%s: %s %s: %d swap(s) by %s; each temporary directory fsynced after its "
                 "last entry and before the swap, the parent fsynced after; its files %s each %s"
                 % (label, kind, short(path), len(mine), ", ".join(WAYS[w] for w in done), got,
                    " or ".join(durable) or "-")
                 + ("" if on_disk == got else " (on disk: %s)" % on_disk)):
            seen[kind] = seen.get(kind, 0) + 1
    return renames


try:
    # ---- Fixtures: a tiny model with a tokenizer, 4 pictures, a JSONL ------
    model = os.path.join(base, "model")
    p = subprocess.run([sys.executable, gen, model, "--vision", "clip", "--text", "llama",
                        "--dtype", "f32", "--with-tokenizer"], capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
        print("FAIL cannot generate the tiny model with a tokenizer")
        sys.exit(1)
    os.makedirs(os.path.join(base, "img"))
    rows = []
    for k, (c, w) in enumerate([((220, 30, 30), "red"), ((30, 200, 40), "green"),
                                ((30, 40, 220), "blue"), ((240, 240, 20), "yellow")]):
        png(os.path.join(base, "img", "%d.png" % k), 20 + 2 * k, 18 + k,
            lambda x, y, c=c, k=k: (c[0] ^ (x * k & 63), c[1] ^ (y * 5 & 31), (c[2] + x + y) % 256))
        rows.append({"image": "img/%d.png" % k, "caption": "a %s square" % w,
                     "long_caption": "a picture of a %s square" % w})
    data = os.path.join(base, "train.jsonl")
    with open(data, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    M = ["--model", model, "--threads", "2"]
    out_dir = os.path.join(base, "out")
    os.makedirs(out_dir)

    # ---- .npy outputs (disclvlm/npy.c) -------------------------------------
    npy = os.path.join(out_dir, "e.npy")
    for label in ("encode-text --out ABS.npy (new)", "encode-text --out ABS.npy (replaced)"):
        verify(label, [exe, "encode-text", *M, "a red square", "a blue square", "--out", npy],
               [("npy", npy, None, None)])
    verify("encode-text --out rel.npy (cwd)",
           [exe, "encode-text", *M, "a green square", "--out", "rel.npy"],
           [("npy (cwd-relative)", os.path.join(out_dir, "rel.npy"), None, None)],
           cwd=out_dir)

    # ---- The eval cache (disclvlm/cmd_eval.c) -------------------------------
    cache = os.path.join(base, "cache")
    # The names hash the inputs: expect whatever the folder holds (two).
    label = "eval retrieval --cache"
    renames = verify(label, [exe, "eval", "retrieval", *M, "--data", data, "--cache", cache,
                             "--json"], [])
    files = sorted(os.listdir(cache)) if os.path.isdir(cache) else []
    check(len(files) == 2, "%s: 2 cache files (%s)" % (label, files))
    for name in files:
        path = os.path.join(cache, name)
        mine = [r for r in renames if r.dst == path and not r.is_dir]
        if check(bool(mine) and not any(r.problems for r in mine),
                 "%s: eval cache %s put in place by a rename, the temporary fsynced after "
                 "its last write and before the rename, the directory fsynced after it"
                 % (label, short(path))):
            seen["eval cache"] = seen.get("eval cache", 0) + 1

    # ---- Training: adapter, checkpoint, saved model ------------------------
    adapter = os.path.join(base, "ad")
    ckpt = adapter + ".ckpt"
    saved = os.path.join(base, "saved")
    adapter_files = ["adapter_config.json", "adapter_model.safetensors",
                     "soft_prompts.safetensors", "prompts.json"]
    T = [exe, "train", *M, "--data", data, "--out", adapter, "--save-model", saved,
         "--batch", "2", "--lora-rank", "4"]

    def train_expect(way, ckpt_ways=None):
        return [("adapter", adapter, adapter_files, [way]),
                ("checkpoint", ckpt, adapter_files + ["train_state.safetensors"],
                 ckpt_ways or [way]),
                ("saved model", saved, ["config.json", "model.safetensors"], [way])]

    # --save-every 1 over 2 steps: the checkpoint is new, then exchanged.
    verify("train (new directories, --save-every 1)", T + ["--steps", "2", "--save-every", "1"],
           train_expect("new", ["new", "exchange"]))
    verify("train (replacing them)", T + ["--steps", "1"], train_expect("exchange"))
    verify("train (replacing them, no RENAME_EXCHANGE)", T + ["--steps", "1"],
           train_expect("fallback"), no_exchange=True)

    # ---- A bare directory-level save with a file written in place ----------
    bare = os.path.join(base, "bare")
    for label, way, no_x in (("new", "new", False), ("replaced", "exchange", False),
                             ("replaced, no RENAME_EXCHANGE", "fallback", True)):
        verify("fsorder_dirsave (%s)" % label, [dirsave, bare],
               [("dir save, file in place", bare, ["atomic.txt", "inplace.txt"], [way])],
               no_exchange=no_x)
finally:
    shutil.rmtree(base, ignore_errors=True)

kinds = ["npy", "npy (cwd-relative)", "eval cache", "adapter", "checkpoint", "saved model",
         "dir save, file in place"]
for k in kinds:
    check(seen.get(k, 0) > 0, "seen and verified: %s (%d)" % (k, seen.get(k, 0)))
check(not all_problems, "no rename in any log broke the order (%d problems)" % len(all_problems))
if failures:
    print("%d FAILED" % len(failures))
    sys.exit(1)
print("all durability checks passed")
