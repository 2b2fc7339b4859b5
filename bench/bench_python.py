#!/usr/bin/env python3
"""Python overhead per call of the disclvlm package (ctypes + NumPy).

Times the same library calls three ways, in microseconds per call (median):

  C         a loop in C over the public API (compiled here with `cc` into a
            shared object loaded into this process, same session and library)
  ctypes    the bare ctypes function with its arguments prepared once
  disclvlm  the package's method (argument conversion, output array, lock,
            status check)

for `dlv_encode_text` (a batch of short texts through the model) and
`dlv_session_logit_scale` (a call that does no work, so its time is the pure
crossing cost). The overhead column is disclvlm - C.

usage: bench_python.py [--model DIR] [--texts N] [--iterations N] [--threads N]
                       [--include DIR | --no-c]

Without --model a tiny generated checkpoint (tests/gen_tiny_checkpoint.py) is
used, so the encode call is short and the overhead shows; on a real model the
same overhead is a vanishing fraction. Run with the Python that has disclvlm
installed (or PYTHONPATH=python DISCLVLM_LIBRARY=build/lib/libdisclvlm.so.1).
"""
import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import disclvlm
from disclvlm import _ffi

HERE = os.path.dirname(os.path.abspath(__file__))

C_SOURCE = r"""
#include <disclvlm.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* iters calls of dlv_encode_text; times[k] = microseconds of call k. */
int bench_encode_text(dlv_session *s, const char *const *texts, size_t n, float *out,
                      size_t out_len, int iters, double *times)
{
    for (int k = 0; k < iters; k++) {
        double t0 = now_us();
        dlv_status st = dlv_encode_text(s, texts, n, out, out_len);
        times[k] = now_us() - t0;
        if (st != DLV_OK) return (int)st;
    }
    return 0;
}

/* Mean microseconds of one dlv_session_logit_scale call over reps calls. */
double bench_logit_scale(dlv_session *s, int reps)
{
    float v = 0;
    double t0 = now_us();
    for (int k = 0; k < reps; k++) dlv_session_logit_scale(s, &v);
    return (now_us() - t0) / reps;
}
"""


def mean_us(fn, reps):
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        fn()
    return (time.perf_counter_ns() - t0) / 1e3 / reps


def build_c(include, tmp):
    """The C timing loops as a shared object loaded into this process, so
    that C and Python time the same session under the same conditions."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    lib = disclvlm.library_path
    if not cc:
        return None, "no C compiler"
    if not lib or not os.path.isabs(lib):
        return None, "the library path is not known"
    src = os.path.join(tmp, "bench_c.c")
    so = os.path.join(tmp, "bench_c.so")
    with open(src, "w") as f:
        f.write(C_SOURCE)
    p = subprocess.run([cc, "-O2", "-std=c11", "-D_POSIX_C_SOURCE=199309L", "-shared", "-fPIC",
                        "-I", include, src, lib, "-Wl,-rpath," + os.path.dirname(lib), "-o", so],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None, "cc failed: " + p.stderr.strip()
    c = ctypes.CDLL(so)
    c.bench_encode_text.restype = ctypes.c_int
    c.bench_encode_text.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                    ctypes.c_void_p]
    c.bench_logit_scale.restype = ctypes.c_double
    c.bench_logit_scale.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return c, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--texts", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--include", default=os.path.join(HERE, "..", "include"))
    ap.add_argument("--no-c", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if not model_dir:
            model_dir = os.path.join(tmp, "tiny")
            gen = os.environ.get("DISCLVLM_GEN_TINY",
                                 os.path.join(HERE, "..", "tests", "gen_tiny_checkpoint.py"))
            subprocess.run([sys.executable, gen, model_dir, "--vision", "clip", "--text", "llama",
                            "--with-tokenizer"], check=True, stdout=subprocess.DEVNULL)
        texts = ["a photo of thing number %d" % i for i in range(args.texts)]

        c, why = (None, "--no-c") if args.no_c else build_c(args.include, tmp)

        with disclvlm.Model(model_dir, threads=args.threads) as model, model.session() as s:
            dim = model.embed_dim
            h = s._ptr()
            arr = (ctypes.c_char_p * len(texts))(*[t.encode() for t in texts])
            out = np.empty((len(texts), dim), np.float32)
            fn = _ffi.lib.dlv_encode_text

            def raw():
                fn(h, arr, len(texts), out.ctypes.data, out.size)

            def py():
                s.encode_text(texts)

            # Interleave blocks of the three ways so that machine noise hits
            # them alike.
            block = 10
            t_c, t_raw, t_py = [], [], []
            tbuf = np.empty(block, np.float64)
            for _ in range(3):
                raw()
                py()
            for _ in range(max(1, args.iterations // block)):
                if c is not None:
                    st = c.bench_encode_text(h, arr, len(texts), out.ctypes.data, out.size, block,
                                             tbuf.ctypes.data)
                    assert st == 0, disclvlm.library_version()
                    t_c.extend(tbuf.tolist())
                for lst, f in ((t_raw, raw), (t_py, py)):
                    for _ in range(block):
                        t0 = time.perf_counter_ns()
                        f()
                        lst.append((time.perf_counter_ns() - t0) / 1e3)
            assert np.array_equal(out, s.encode_text(texts))
            enc_c = statistics.median(t_c) if t_c else None
            raw_enc, py_enc = statistics.median(t_raw), statistics.median(t_py)

            # The Python side alone: the package's encode_text with the C
            # function swapped for a stub that returns DLV_OK at once.
            _ffi.lib.dlv_encode_text = lambda *a: 0
            try:
                py_only = mean_us(py, 20000)
            finally:
                _ffi.lib.dlv_encode_text = fn

            ls = ctypes.c_float()
            ref = ctypes.byref(ls)
            fl = _ffi.lib.dlv_session_logit_scale
            reps = 20000
            triv_c = c.bench_logit_scale(h, reps * 10) if c is not None else None
            raw_triv = mean_us(lambda: fl(h, ref), reps)
            py_triv = mean_us(lambda: s.logit_scale, reps)

    print("disclvlm %s (library %s), %s, %d thread(s), %d iterations"
          % (disclvlm.__version__, disclvlm.library_version(), disclvlm.library_path,
             args.threads, args.iterations))
    print("model: %s, embed dim %d" % (args.model or "tiny generated checkpoint", dim))
    if c is None:
        print("C column: not measured (%s)" % why)
    fmt = "%-28s %10s %12s %14s %14s"
    print(fmt % ("call (us per call, median)", "C", "ctypes", "disclvlm", "overhead"))

    def f(x):
        return "-" if x is None else "%.2f" % x

    rows = [("encode_text (%d texts)" % len(texts), enc_c, raw_enc, py_enc),
            ("logit_scale (no work)", triv_c, raw_triv, py_triv)]

    for name, cv, rv, pv in rows:
        over = pv - cv if cv is not None else None
        print(fmt % (name, f(cv), f(rv), f(pv), f(over)))
    # The same Python work with the C call stubbed out: the overhead without
    # the noise of timing a 1000x longer call.
    print(fmt % ("encode_text, C call stubbed", "0", "-", f(py_only), f(py_only)))
    print("Python-side work per encode_text call: %.1f us (%.2f%% of the call)"
          % (py_only, 100.0 * py_only / py_enc))
    if enc_c is not None:
        print("end to end, disclvlm - C: %.1f us per encode_text call (%.2f%%; includes cache "
              "and scheduling effects of returning to the interpreter between calls)"
              % (py_enc - enc_c, 100.0 * (py_enc - enc_c) / py_enc))


if __name__ == "__main__":
    main()
