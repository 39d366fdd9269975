#!/usr/bin/env python3
"""Runbook step overhead benchmark (issue 9): what Spotter adds around each step it runs.

Starts the release binary on a fresh SQLite database (or PostgreSQL with --pg URL) with a
runbook directory holding one pre-approved runbook of S steps, each `/bin/true`. It requests K
runs one after another through the command API, for an incident (so every step's start and end
goes to the timeline, the audit log and the chat outbox, as in real use), and reads each run's
own record: from `requested_at` to `finished_at`, i.e. request committed, claimed by the
worker, every step recorded before and after its process, and the end committed.

The reference, in the same session on the same machine: the least work that does the job, S
sequential spawns of `/bin/true` from this script (no records at all).

Usage: cargo build --release && python3 bench/run-overhead.py [--steps 20] [--runs 20] [--pg URL]
"""
import argparse, json, os, socket, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime

TOKEN = "bench-run-overhead-token-0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def when(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--pg", default=None)
    ap.add_argument("--bin", default=os.environ.get("SPOTTER_BIN", "target/release/spotter"))
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)

    tmp = tempfile.mkdtemp(prefix="spotter-run-bench-")
    rb = os.path.join(tmp, "runbooks")
    os.makedirs(rb)
    steps = "".join(
        f'\n[[step]]\nid = "s{i}"\ndescription = "true"\nkind = "exec"\nargv = ["/bin/true"]\ntimeout = "10s"\n'
        for i in range(a.steps)
    )
    with open(os.path.join(rb, "steps.toml"), "w") as f:
        f.write(f'name = "steps"\ndescription = "{a.steps} x /bin/true"\napprovals = 0\ntarget = "{{{{run}}}}"\n{steps}')
    from_default = subprocess.run([a.bin, "config", "default"], capture_output=True, text=True, check=True).stdout
    cfg = from_default.replace('# dir = "/etc/spotter/runbooks"', f'dir = "{rb}"').replace(
        'on_declare = "emergency-response"', 'on_declare = ""'
    )
    with open(os.path.join(tmp, "spotter.toml"), "w") as f:
        f.write(cfg)
    port = free_port()
    env = dict(os.environ, SPOTTER_API_TOKEN=TOKEN, SPOTTER_LISTEN=f"127.0.0.1:{port}", RUST_LOG="warn")
    if a.pg:
        env["SPOTTER_DATABASE_URL"] = a.pg
    server = subprocess.Popen([a.bin, "--config", "spotter.toml", "serve"], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def call(method, path, body=None):
        req = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        call("POST", "/api/v1/commands", {"user": "dev", "text": '/incident declare level:2 title:"bench"'})
        spotter = []
        for _ in range(a.runs):
            v = call("POST", "/api/v1/commands", {"user": "dev", "text": "/runbook run name:steps incident:INC-1"})
            rid = v["run"]["id"]
            while True:
                r = call("GET", f"/api/v1/runs/{rid}")
                if r["state"] not in ("approved", "running", "pending_approval"):
                    break
                time.sleep(0.02)
            assert r["state"] == "succeeded", r
            spotter.append((when(r["finished_at"]) - when(r["requested_at"])) * 1000)
        reference = []
        for _ in range(a.runs):
            t = time.perf_counter()
            for _ in range(a.steps):
                subprocess.run(["/bin/true"], check=True)
            reference.append((time.perf_counter() - t) * 1000)
    finally:
        server.terminate()
        server.wait()
    backend = "PostgreSQL" if a.pg else "SQLite"
    per = lambda xs: pct(xs, 50) / a.steps
    print(f"{backend}: {a.runs} runs of {a.steps} steps")
    print(f"  spotter   run p50 {pct(spotter, 50):7.1f} ms  p99 {pct(spotter, 99):7.1f} ms  ({per(spotter):.2f} ms a step)")
    print(f"  reference run p50 {pct(reference, 50):7.1f} ms  p99 {pct(reference, 99):7.1f} ms  ({per(reference):.2f} ms a step)")
    print(f"  overhead  {per(spotter) - per(reference):.2f} ms a step")


if __name__ == "__main__":
    sys.exit(main())
