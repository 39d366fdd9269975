#!/usr/bin/env python3
"""Status page benchmark (issue 10): the public surfaces served from memory.

Starts the release binary (fresh SQLite, `[status] publish_after = "0s"`, the per-client budget
raised so one load generator is not throttled), opens one public incident, then:

1. wrk against `/api/v2/summary.json` and `/status` (closed loop, 2 threads, 16 connections), and
   against `/healthz` in the same run: the reference, the least an HTTP answer from this server
   can cost (a constant);
2. the time from `/incident declare` committed to the change visible in `summary.json`, polled
   every millisecond, N times.

Usage: cargo build --release && python3 bench/status-page.py [--duration 10] [--n 20]
Needs wrk (apt-get install wrk).
"""
import argparse, json, os, re, socket, subprocess, sys, tempfile, time, urllib.request

TOKEN = "bench-status-page-token-0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def wrk(url, duration):
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--bin", default=os.environ.get("SPOTTER_BIN", "target/release/spotter"))
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="spotter-status-bench-")
    cfg = subprocess.run([a.bin, "config", "default"], capture_output=True, text=True, check=True).stdout
    cfg = cfg.replace('publish_after = "5m"', 'publish_after = "0s"')
    cfg = re.sub(r"api_per_second = [\d.]+", "api_per_second = 10000000", cfg)
    cfg = re.sub(r"api_burst = \d+", "api_burst = 10000000", cfg)
    cfg = cfg.replace('on_declare = "emergency-response"', 'on_declare = ""')
    with open(os.path.join(tmp, "spotter.toml"), "w") as f:
        f.write(cfg)
    port = free_port()
    env = dict(os.environ, SPOTTER_API_TOKEN=TOKEN, SPOTTER_LISTEN=f"127.0.0.1:{port}", RUST_LOG="warn")
    server = subprocess.Popen([a.bin, "--config", "spotter.toml", "serve"], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def command(text):
        req = urllib.request.Request(base + "/api/v1/commands", method="POST",
                                     data=json.dumps({"user": "dba", "text": text}).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def summary():
        with urllib.request.urlopen(base + "/api/v2/summary.json", timeout=5) as r:
            return json.loads(r.read())

    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        visible = []
        for i in range(a.n):
            t = time.perf_counter()
            command(f'/incident declare level:3 title:"bench {i}" component:database')
            committed = time.perf_counter()
            while len(summary()["incidents"]) < i + 1:
                time.sleep(0.001)
            visible.append((time.perf_counter() - committed) * 1000)
        results = {p: wrk(base + p, a.duration) for p in ["/healthz", "/api/v2/summary.json", "/status"]}
    finally:
        server.terminate()
        server.wait()
    print(f"{'path':<24} {'req/s':>10} {'p99 ms':>8}")
    for p, (rps, p99) in results.items():
        print(f"{p:<24} {rps:>10.0f} {p99:>8.2f}")
    print(f"declare committed -> visible in summary.json: p50 {pct(visible, 50):.1f} ms, "
          f"p99 {pct(visible, 99):.1f} ms ({a.n} incidents)")


if __name__ == "__main__":
    sys.exit(main())
