#!/usr/bin/env python3
"""Status page benchmark (issue 10): the public surfaces served from memory.

Starts the release binary (fresh SQLite, `[status] publish_after = "0s"`, the per-client budget
raised so one load generator is not throttled), opens one public incident, then:

1. wrk against `/api/v2/summary.json` and `/status` (closed loop, 2 threads, 16 connections), and
   against `/healthz` in the same run: the reference, the least an HTTP answer from this server
   can cost (a constant);
2. the issue's target, "p99 < 5 ms at a fixed 1,000 req/s": bench/fixed-rate.py (open loop,
   latency from each request's scheduled send time) at --rate against the same three paths, one
   after the other; `/healthz` is the floor of the generator and the loopback at that rate;
3. the time from `/incident declare` committed to the change visible in `summary.json`, polled
   every millisecond, N times.

Usage: cargo build --release && python3 bench/status-page.py [--duration 10] [--n 20]
       [--rate 1000] [--connections 64]
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


FIXED_RATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixed-rate.py")


def fixed_rate(url, rate, duration, connections):
    out = subprocess.run([sys.executable, FIXED_RATE, url, "--rate", str(rate), "--duration",
                          str(duration), "--connections", str(connections), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--connections", type=int, default=64)
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
        paths = ["/healthz", "/api/v2/summary.json", "/status"]
        results = {p: wrk(base + p, a.duration) for p in paths}
        fixed = {p: fixed_rate(base + p, a.rate, a.duration, a.connections) for p in paths}
    finally:
        server.terminate()
        server.wait()
    print(f"{'path':<24} {'req/s':>10} {'p99 ms':>8}")
    for p, (rps, p99) in results.items():
        print(f"{p:<24} {rps:>10.0f} {p99:>8.2f}")
    print(f"\nfixed {a.rate:g} req/s, open loop, {a.connections} connections, {a.duration}s "
          f"(latency from the scheduled send time):")
    print(f"{'path':<24} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} "
          f"{'max ms':>8} {'non2xx':>7}")
    for p, r in fixed.items():
        print(f"{p:<24} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['p99_9_ms']:>9.2f} {r['max_ms']:>8.2f} {r['non2xx']:>7}")
    print()
    print(f"declare committed -> visible in summary.json: p50 {pct(visible, 50):.1f} ms, "
          f"p99 {pct(visible, 99):.1f} ms ({a.n} incidents)")


if __name__ == "__main__":
    sys.exit(main())
