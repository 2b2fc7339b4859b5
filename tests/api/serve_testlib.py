"""What the `disclvlm serve` tests share: pass/fail bookkeeping, starting a
server on a free loopback port, JSON calls, .npy rows and /metrics."""
import json
import struct
import subprocess
import urllib.error
import urllib.request

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def start(exe, model, *extra):
    """A server on a port the kernel picks; returns (process, base URL)."""
    p = subprocess.Popen([exe, "serve", "--model", model, "--port", "0", "--threads", "1",
                          *extra], stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    if "listening on http://" not in line:
        p.kill()
        raise SystemExit("FAIL the server did not start: " + line + p.stderr.read())
    port = int(line.split("http://127.0.0.1:")[1].split()[0])
    return p, "http://127.0.0.1:%d" % port


def call(url, body=None, method=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def npy(path):
    """The float32 payload of a .npy file and its number of floats."""
    with open(path, "rb") as f:
        blob = f.read()
    (hl,) = struct.unpack("<H", blob[8:10])
    n = (len(blob) - 10 - hl) // 4
    return blob[10 + hl:], n


def f32_bytes(values):
    return struct.pack("<%df" % len(values), *values)


def metrics(base):
    """GET /metrics as ({series: value}, content type)."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        ctype, text = r.headers.get("Content-Type"), r.read().decode()
    out = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            k, v = ln.rsplit(" ", 1)
            out[k] = float(v)
    return out, ctype


def finish():
    import sys
    if failures:
        print("%d FAILED" % len(failures))
        sys.exit(1)
    print("all passed")
