#!/usr/bin/env python3
"""Subscriber delivery latency (issue 10): `/incident declare` committed → the signed webhook
delivered to a local subscriber.

Starts the release binary (fresh SQLite, `[status] publish_after = "0s"`), a webhook receiver in
this process (it checks every signature), adds the receiver as a subscriber with the real CLI
(`spotter subscribers add --webhook … --secret-env …`), then N times declares a level-3 incident
on `database` through the command API and measures, from the moment the API answered (the
declaration committed):

- the change visible in `/api/v2/summary.json` (polled every millisecond): the in-memory path,
  measured in the same run as the reference;
- the incident's first webhook received by the subscriber: announcer → outbox → broadcasts
  lane → signed POST.

Usage: cargo build --release && python3 bench/subscriber-latency.py [--n 50]
"""
import argparse, hashlib, hmac, http.server, json, os, re, socket, subprocess, sys, tempfile
import threading, time, urllib.request

TOKEN = "bench-subscriber-token-0123456789"
SECRET = "bench-hook-secret-9f8e7d"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Receiver(http.server.BaseHTTPRequestHandler):
    arrivals = {}  # public incident id -> first arrival (perf_counter)
    bad = 0
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ts, sig = self.headers["X-Spotter-Timestamp"], self.headers["X-Spotter-Signature"]
        want = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        now = time.perf_counter()
        with Receiver.lock:
            if not hmac.compare_digest(want, sig):
                Receiver.bad += 1
            j = json.loads(body)
            if "incident" in j:
                Receiver.arrivals.setdefault(j["incident"]["id"], now)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--bin", default=os.environ.get("SPOTTER_BIN", "target/release/spotter"))
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="spotter-subscriber-bench-")
    cfg = subprocess.run([a.bin, "config", "default"], capture_output=True, text=True, check=True).stdout
    cfg = cfg.replace('publish_after = "5m"', 'publish_after = "0s"')
    cfg = cfg.replace('on_declare = "emergency-response"', 'on_declare = ""')
    with open(os.path.join(tmp, "spotter.toml"), "w") as f:
        f.write(cfg)
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
    port = free_port()
    env = dict(os.environ, SPOTTER_API_TOKEN=TOKEN, SPOTTER_LISTEN=f"127.0.0.1:{port}",
               RUST_LOG="warn", BENCH_HOOK_SECRET=SECRET)
    server = subprocess.Popen([a.bin, "--config", "spotter.toml", "serve"], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def command(text):
        req = urllib.request.Request(base + "/api/v1/commands", method="POST",
                                     data=json.dumps({"user": "dba", "text": text}).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def public_ids():
        with urllib.request.urlopen(base + "/api/v2/incidents.json", timeout=5) as r:
            return [i["id"] for i in json.loads(r.read())["incidents"]]

    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        subprocess.run([a.bin, "--config", "spotter.toml", "subscribers", "add", "--webhook", hook_url,
                        "--secret-env", "BENCH_HOOK_SECRET"], cwd=tmp, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        visible, delivered = [], []
        for i in range(a.n):
            known = set(public_ids())
            command(f'/incident declare level:3 title:"bench {i}" component:database')
            committed = time.perf_counter()
            while True:
                new = [x for x in public_ids() if x not in known]
                if new:
                    break
                time.sleep(0.001)
            visible.append((time.perf_counter() - committed) * 1000)
            deadline = time.time() + 30
            while new[0] not in Receiver.arrivals:
                if time.time() > deadline:
                    raise SystemExit(f"incident {new[0]} never reached the subscriber")
                time.sleep(0.0005)
            delivered.append((Receiver.arrivals[new[0]] - committed) * 1000)
            command(f'/incident resolve summary:"bench"')
            time.sleep(0.05)
    finally:
        server.terminate()
        server.wait()
        hook.shutdown()
    print(f"{a.n} declarations, signatures bad: {Receiver.bad}")
    print(f"committed -> visible in incidents.json: p50 {pct(visible, 50):.1f} ms, p99 {pct(visible, 99):.1f} ms")
    print(f"committed -> webhook delivered:        p50 {pct(delivered, 50):.1f} ms, p99 {pct(delivered, 99):.1f} ms, max {max(delivered):.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
