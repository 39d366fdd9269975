#!/usr/bin/env python3
"""Alert storm benchmark (issue 11): Spotter against the durable reference, same load, same run.

Two targets, each on a fresh store per run:
  reference  bench/reference-receiver: upserts a notification's alerts in one transaction
             (SQLite WAL, synchronous=FULL; or PostgreSQL) and answers 200 after the commit.
             The least work a durable receiver can do on this disk.
  spotter    the release binary: `spotter config default` with the alertmanager source's rate
             limit raised (as bench/alert-bench.sh), `on_declare = ""` (as bench/status-page.py:
             no emergency-response run per declared incident), token in SPOTTER_ALERTMANAGER_TOKEN.

Load shapes (closed loop, for --duration seconds, every alert a fingerprint never seen before):
  one      1 new alert per notification, --senders concurrent senders, alert names cycling
           through --groups names, so on Spotter each alert joins one of 8 open incidents (the
           bench/alert-new.lua run);
  storm    --batch (50) new alerts per notification, --storm-senders (8) concurrent senders; one
           alert name per notification, cycling through --groups names (Alertmanager sends one
           notification per group, so a storm is many alerts of few names);
  declare  1 new alert per notification, every alert its own name: each declares an incident on
           Spotter. On the reference it is the same work as `one`, so it is run on Spotter only
           and compared with the reference's `one`.

The load generator is this script's asyncio client, not wrk, because it knows which fingerprints
each 2xx answer acknowledged: after each run it reads the target's `alerts` table (sqlite3 /
psql) and checks that every acknowledged alert is stored, by name, not only by count. It reports
its own CPU use, since on a small machine it shares the cores with the server. On Spotter it
also counts the scheduled jobs (escalation tiers, RTO watch) that were due by the end of the
load and had not run: intake bought by letting pages fall behind shows there.

Usage:
  cargo build --release
  (cd bench/reference-receiver && cargo build --release)
  python3 bench/storm.py [--duration 10] [--shapes one,storm,declare] [--targets reference,spotter]
  python3 bench/storm.py --pg postgres://postgres@127.0.0.1:5432/postgres  # a fresh database per
                                                                          # run on that server
Needs python3, sqlite3, psql (for --pg). Binaries: --bin / SPOTTER_BIN, --reference /
REFERENCE_BIN (default: target dirs under CARGO_TARGET_DIR or the repository).
"""
import argparse, asyncio, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bench-storm-token-0123456789abcdef"

ALERT = ('{"status":"firing","labels":{"alertname":"%s","instance":"%s","service":"database",'
         '"severity":"critical"},"annotations":{"summary":"storm alert %s"},'
         '"startsAt":"2026-11-26T09:58:12.123Z","endsAt":"0001-01-01T00:00:00Z",'
         '"generatorURL":"http://prometheus.example:9090/graph","fingerprint":"%s"}')
ENVELOPE = ('{"version":"4","groupKey":"{}:{alertname=\\"%s\\"}","truncatedAlerts":0,'
            '"status":"firing","receiver":"spotter","groupLabels":{"alertname":"%s"},'
            '"commonLabels":{"service":"database","severity":"critical"},"commonAnnotations":{},'
            '"externalURL":"http://alertmanager.example:9093","alerts":[%s]}')


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(xs, p):
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000 if xs else float("nan")


async def read_response(reader):
    """One HTTP/1.1 response: the status code (the body is read and dropped)."""
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status


async def load(port, run, batch, senders, groups, duration):
    """Closed loop: each sender sends its next notification when the last one was answered.
    After the deadline each sender finishes the request it has in flight, so every sent alert is
    either acknowledged or known not to be."""
    head = ("POST /webhooks/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nAuthorization: Bearer %s\r\n"
            "Content-Length: %%d\r\n\r\n" % TOKEN)
    latencies, statuses, acked, errors = [], {}, [], [0]
    counter = [0]
    t0 = time.perf_counter()
    deadline = t0 + duration

    async def sender(s):
        reader = writer = None
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            counter[0] += 1
            fps = ["%s-s%d-%d-%d" % (run, s, n, k) for k in range(batch)]
            if groups > 0:
                name = "Storm%d" % (counter[0] % groups)
                names = [name] * batch
            else:
                names = ["Storm-" + fp for fp in fps]
                name = names[0]
            body = (ENVELOPE % (name, name, ",".join(ALERT % (nm, fp, fp, fp) for nm, fp in zip(names, fps)))).encode()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                t = time.perf_counter()
                writer.write((head % len(body)).encode() + body)
                await writer.drain()
                code = await read_response(reader)
                latencies.append(time.perf_counter() - t)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors[0] += 1
                writer = None
                continue
            statuses[code] = statuses.get(code, 0) + 1
            if 200 <= code < 300:
                acked.extend(fps)
        if writer is not None:
            writer.close()

    cpu0 = time.process_time()
    await asyncio.gather(*(sender(s) for s in range(senders)))
    elapsed = time.perf_counter() - t0
    cpu = (time.process_time() - cpu0) / elapsed
    latencies.sort()
    return dict(elapsed=elapsed, latencies=latencies, statuses=statuses, acked=acked,
                errors=errors[0], sent=counter[0], cpu=cpu)


def busy_jiffies(pid=None):
    """CPU time in clock ticks: the whole machine's busy time, or one process's (user + system),
    so each run can say how much of the cores the server, the generator and everything else took."""
    if pid is None:
        f = open("/proc/stat").readline().split()[1:]
        return sum(int(x) for i, x in enumerate(f) if i not in (3, 4))  # all but idle, iowait
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def postgres_jiffies():
    """The CPU time of the local PostgreSQL server's processes: with --pg the database does much
    of the work in processes of its own, which would otherwise count as "everything else"."""
    total = 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and open(f"/proc/{pid}/comm").read().strip() == "postgres":
                total += busy_jiffies(int(pid))
        except OSError:
            pass
    return total


def wait_ready(port, proc, url=None):
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"the server exited early (code {proc.returncode})")
        try:
            if url:
                urllib.request.urlopen(url, timeout=1)
            else:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit("the server did not become ready in 30 s")


def stored(db, run):
    """The fingerprints of this run in the target's alerts table."""
    q = f"SELECT fingerprint FROM alerts WHERE fingerprint LIKE '{run}-%'"
    if db.startswith("postgres"):
        out = subprocess.run(["psql", db, "-tAc", q], capture_output=True, text=True, check=True).stdout
    else:
        out = subprocess.run(["sqlite3", db, q], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def jobs_behind(db, now_ms):
    """Scheduled jobs (escalation tiers, the RTO watch) due by the end of the load but not run:
    a server that keeps intake fast by letting its pages fall behind shows it here."""
    q = f"SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND due_at <= {now_ms - 2000}"
    if db.startswith("postgres"):
        out = subprocess.run(["psql", db, "-tAc", q], capture_output=True, text=True, check=True).stdout
    else:
        out = subprocess.run(["sqlite3", db, q], capture_output=True, text=True, check=True).stdout
    return int(out.strip() or 0)


def psql(url, sql):
    subprocess.run(["psql", url, "-qc", sql], check=True, capture_output=True)


def one_run(a, target, shape, tmp, cfg):
    batch = a.batch if shape == "storm" else 1
    senders = a.storm_senders if shape == "storm" else a.senders
    groups = 0 if shape == "declare" else a.groups
    run = f"{target[0]}{shape[0]}{os.getpid()}"
    work = tempfile.mkdtemp(prefix=f"storm-{target}-{shape}-", dir=tmp)
    port = free_port()
    pgdb = None
    if a.pg:
        pgdb = f"storm_{target}_{shape}_{os.getpid()}"
        psql(a.pg, f"CREATE DATABASE {pgdb}")
        dburl = a.pg.rsplit("/", 1)[0] + "/" + pgdb
    log = open(os.path.join(work, "server.log"), "w")
    if target == "reference":
        dburl = dburl if a.pg else os.path.join(work, "reference.db")
        cmd = [a.reference, "--listen", f"127.0.0.1:{port}", "--token", TOKEN,
               "--pg" if a.pg else "--sqlite", dburl]
        proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=log)
        ready = None
    else:
        env = dict(os.environ, SPOTTER_LISTEN=f"127.0.0.1:{port}", SPOTTER_ALERTMANAGER_TOKEN=TOKEN,
                   RUST_LOG=os.environ.get("STORM_RUST_LOG", "warn"))
        if a.pg:
            env["SPOTTER_DATABASE_URL"] = dburl
        else:
            dburl = os.path.join(work, "data", "spotter.db")
        proc = subprocess.Popen([a.bin, "--config", cfg, "serve"], cwd=work, env=env, stdout=log, stderr=log)
        ready = f"http://127.0.0.1:{port}/readyz"
    try:
        wait_ready(port, proc, ready)
        j0, s0, p0 = busy_jiffies(), busy_jiffies(proc.pid), postgres_jiffies()
        r = asyncio.run(load(port, run, batch, senders, groups, a.duration))
        hz = os.sysconf("SC_CLK_TCK") * r["elapsed"]
        r["machine_cpu"] = (busy_jiffies() - j0) / hz
        r["server_cpu"] = (busy_jiffies(proc.pid) - s0) / hz
        r["pg_cpu"] = (postgres_jiffies() - p0) / hz
        r["per_txn"] = None
        if target == "spotter":
            # Group commit at work: the requests' units per write transaction, from /metrics.
            m = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            t = re.search(r"^spotter_store_transactions_total (\d+)", m, re.M)
            u = re.search(r"^spotter_store_transaction_units_total (\d+)", m, re.M)
            if t and u and int(t.group(1)):
                r["per_txn"] = int(u.group(1)) / int(t.group(1))
        have = stored(dburl, run)
        r["jobs_behind"] = jobs_behind(dburl, int(time.time() * 1000)) if target == "spotter" else None
    finally:
        proc.terminate()
        proc.wait()
        log.close()
        if pgdb:
            psql(a.pg, f"DROP DATABASE {pgdb} WITH (FORCE)")
    acked = r["acked"]
    r["stored"] = len(have)
    r["missing"] = sum(1 for fp in acked if fp not in have)
    r["alerts_s"] = len(acked) / r["elapsed"]
    r["shape"], r["target"], r["batch"], r["senders"] = shape, target, batch, senders
    with open(os.path.join(work, "server.log")) as f:
        r["log_errors"] = sum(1 for line in f if re.search(r"ERROR|panicked", line))
    if os.environ.get("STORM_KEEP_LOG"):
        shutil.copy(os.path.join(work, "server.log"), os.environ["STORM_KEEP_LOG"])
    non2xx = {c: n for c, n in r["statuses"].items() if not 200 <= c < 300}
    print(f"[{a.backend}] {target:<9} {shape:<7} {batch:>2} alerts x {senders:>2} senders: "
          f"{r['alerts_s']:>7.0f} alerts/s, {len(r['latencies']) / r['elapsed']:>6.0f} notif/s, "
          f"p50 {pct(r['latencies'], 50):.2f} ms, p99 {pct(r['latencies'], 99):.2f} ms; "
          f"2xx'd alerts {len(acked)}, stored {len(have)}, 2xx'd but missing {r['missing']}; "
          f"non-2xx {non2xx or 0}, socket errors {r['errors']}, server log errors {r['log_errors']}; "
          f"CPU in cores: server {r['server_cpu']:.2f}, generator {r['cpu']:.2f}, "
          f"postgres {r['pg_cpu']:.2f}, everything else "
          f"{max(0.0, r['machine_cpu'] - r['server_cpu'] - r['cpu'] - r['pg_cpu']):.2f} "
          f"(of {os.cpu_count()})"
          + (f"; units per write transaction {r['per_txn']:.1f}" if r["per_txn"] else "")
          + (f"; jobs due 2 s before the end, not run {r['jobs_behind']}" if r["jobs_behind"] is not None else ""),
          flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--senders", type=int, default=16, help="concurrent senders, shapes one/declare")
    ap.add_argument("--storm-senders", type=int, default=8)
    ap.add_argument("--batch", type=int, default=50, help="alerts per storm notification")
    ap.add_argument("--groups", type=int, default=8, help="alert names cycled (one, storm)")
    ap.add_argument("--shapes", default="one,storm,declare")
    ap.add_argument("--targets", default="reference,spotter")
    ap.add_argument("--pg", help="PostgreSQL server URL; a fresh database is created per run")
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--bin", default=os.environ.get("SPOTTER_BIN", os.path.join(target_dir, "release", "spotter")))
    ref_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "bench", "reference-receiver", "target"))
    ap.add_argument("--reference", default=os.environ.get("REFERENCE_BIN", os.path.join(ref_dir, "release", "reference-receiver")))
    a = ap.parse_args()
    a.backend = "postgres" if a.pg else "sqlite"
    shapes = [s for s in a.shapes.split(",") if s]
    for s in shapes:
        if s not in ("one", "storm", "declare"):
            raise SystemExit(f"--shapes: unknown shape `{s}`; accepted: one, storm, declare")
    targets = [t for t in a.targets.split(",") if t]
    for t in targets:
        if t not in ("reference", "spotter"):
            raise SystemExit(f"--targets: unknown target `{t}`; accepted: reference, spotter")
    for b in (a.bin, a.reference):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"no executable {b}: build it (see the usage) or pass --bin / --reference")
    tmp = tempfile.mkdtemp(prefix="spotter-storm-")
    cfg = subprocess.run([a.bin, "config", "default"], capture_output=True, text=True, check=True).stdout
    for old, new in [('rate = "50/s"', 'rate = "1000000/s"'), ("burst = 100\n", "burst = 1000000\n"),
                     ('on_declare = "emergency-response"', 'on_declare = ""')]:
        if old not in cfg:
            raise SystemExit(f"the default config changed: no `{old.strip()}`")
        cfg = cfg.replace(old, new, 1)
    cfg_path = os.path.join(tmp, "storm.toml")
    with open(cfg_path, "w") as f:
        f.write(cfg)
    subprocess.run([a.bin, "config", "check", cfg_path], check=True, capture_output=True)
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    print(f"machine: {os.cpu_count()} cores ({cpu.group(1) if cpu else '?'}), {os.uname().release}; "
          f"backend {a.backend}; {a.duration:g} s per run", flush=True)
    results = {}
    try:
        for shape in shapes:
            for target in targets:
                if shape == "declare" and target == "reference":
                    continue
                results[(target, shape)] = one_run(a, target, shape, tmp, cfg_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n| backend | shape | target | alerts/s | notification p50 / p99 | Spotter / reference | 2xx'd alerts / stored / missing |")
    print("|---|---|---|---|---|---|---|")
    for (target, shape), r in results.items():
        ref = results.get(("reference", "one" if shape == "declare" else shape))
        ratio = f"{r['alerts_s'] / ref['alerts_s']:.2f}x" if target == "spotter" and ref else ""
        print(f"| {a.backend} | {shape} ({r['batch']} x {r['senders']}) | {target} | {r['alerts_s']:,.0f} | "
              f"{pct(r['latencies'], 50):.1f} / {pct(r['latencies'], 99):.1f} ms | {ratio} | "
              f"{len(r['acked']):,} / {r['stored']:,} / {r['missing']} |")
    bad = [k for k, r in results.items() if r["missing"]]
    if bad:
        print(f"ACKNOWLEDGED ALERTS MISSING in {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
