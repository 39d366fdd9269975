#!/usr/bin/env python3
"""Page latency benchmark (issue 8): Alertmanager webhook received -> page delivered.

Starts the release binary on a fresh SQLite database (or PostgreSQL with --pg URL) with every
person reachable by a signed `webhook` at a local receiver run by this script, then sends N
Alertmanager notifications (each a new alert name, so each declares a new level-1 incident whose
first tier pages sysadmin at once), open loop at a fixed rate. For each incident it records:

- answer: from sending the notification to Spotter's 2xx (the least work a durable receiver
  must do: decide and commit; the reference measured in the same run);
- page: from sending the notification to the page arriving at the receiver (signature checked).

Usage: cargo build --release && python3 bench/page-latency.py [--n 1000] [--rate 50] [--pg URL]
"""
import argparse, hashlib, hmac, http.server, json, os, socket, subprocess, sys, tempfile
import threading, time, urllib.request

SECRET = b"bench-page-secret"
TOKEN = "bench-alertmanager-token"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--pg", default=None)
    ap.add_argument("--bin", default=os.environ.get("SPOTTER_BIN", "target/release/spotter"))
    a = ap.parse_args()

    arrived, bad = {}, [0]
    lock = threading.Lock()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            now = time.perf_counter()
            ts = self.headers.get("X-Spotter-Timestamp", "")
            sig = self.headers.get("X-Spotter-Signature", "")
            want = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, sig):
                bad[0] += 1
                self.send_response(401)
                self.end_headers()
                return
            page = json.loads(body)
            title = page["incident"]["title"]
            with lock:
                arrived.setdefault(title, now)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    rport = free_port()
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", rport), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()

    work = tempfile.mkdtemp()
    port = free_port()
    text = subprocess.run([a.bin, "config", "default"], check=True, capture_output=True, text=True).stdout
    text = text.replace(
        "[[person]]\n",
        f'[[person]]\nnotify = [{{ kind = "webhook", url = "http://127.0.0.1:{rport}/page", hmac_secret_env = "BENCH_PAGE_SECRET" }}]\n',
    )
    text = text.replace('rate = "50/s"', 'rate = "1000000/s"').replace("burst = 100\n", "burst = 1000000\n")
    text = text.replace('data_dir = "data"', f'data_dir = "{work}/data"')
    text = text.replace('url = "sqlite://data/spotter.db"', f'url = "sqlite://{work}/data/spotter.db"')
    cfg = os.path.join(work, "bench.toml")
    open(cfg, "w").write(text)
    env = dict(os.environ, SPOTTER_LISTEN=f"127.0.0.1:{port}", BENCH_PAGE_SECRET=SECRET.decode(),
               SPOTTER_ALERTMANAGER_TOKEN=TOKEN, RUST_LOG="warn")
    if a.pg:
        env["SPOTTER_DATABASE_URL"] = a.pg
    proc = subprocess.Popen([a.bin, "--config", cfg, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "serve.log"), "w"))
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if urllib.request.urlopen(base + "/readyz").status == 200:
                break
        except Exception:
            time.sleep(0.05)
    run = str(int(time.time()))
    sent, answered, statuses = {}, {}, {}

    def send(i):
        name = f"PageBench{run}x{i}"
        body = json.dumps({
            "version": "4", "groupKey": "{}:{alertname=\"%s\"}" % name, "status": "firing",
            "receiver": "spotter", "groupLabels": {"alertname": name},
            "commonLabels": {"alertname": name, "severity": "warning"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": [{"status": "firing", "labels": {"alertname": name, "severity": "warning"},
                        "annotations": {"summary": name}, "startsAt": "2026-12-01T09:58:12.123Z",
                        "endsAt": "0001-01-01T00:00:00Z", "fingerprint": hashlib.sha1(name.encode()).hexdigest()[:16]}],
        }).encode()
        req = urllib.request.Request(base + "/webhooks/alertmanager", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN})
        t = time.perf_counter()
        sent[name] = t
        try:
            status = urllib.request.urlopen(req, timeout=30).status
        except urllib.error.HTTPError as e:
            status = e.code
        answered[name] = time.perf_counter()
        statuses[status] = statuses.get(status, 0) + 1

    threads = []
    t0 = time.perf_counter()
    for i in range(a.n):
        delay = t0 + i / a.rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        th = threading.Thread(target=send, args=(i,))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    deadline = time.time() + 30
    while len(arrived) < a.n and time.time() < deadline:
        time.sleep(0.1)
    proc.terminate()
    proc.wait(timeout=15)

    answers = [(answered[k] - sent[k]) * 1000 for k in sent]
    pages = [(arrived[k] - sent[k]) * 1000 for k in sent if k in arrived]
    backend = "PostgreSQL" if a.pg else "SQLite"
    print(f"{backend}: {a.n} notifications at {a.rate:g}/s; statuses {statuses}; pages received {len(pages)} (bad signatures {bad[0]})")
    print(f"  answer (2xx):        p50 {pct(answers, 50):7.1f} ms   p99 {pct(answers, 99):7.1f} ms   max {max(answers):7.1f} ms")
    if pages:
        print(f"  page at receiver:    p50 {pct(pages, 50):7.1f} ms   p99 {pct(pages, 99):7.1f} ms   max {max(pages):7.1f} ms")
    if len(pages) < a.n or bad[0]:
        sys.exit(1)


if __name__ == "__main__":
    main()
