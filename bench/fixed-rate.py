#!/usr/bin/env python3
"""Open-loop fixed-rate HTTP/1.1 load generator (what wrk2 does; wrk2 is not packaged for Debian).

Requests are sent on a fixed schedule (request i at start + i/rate), spread over CONNECTIONS
keep-alive connections, and each latency is measured from the request's *scheduled* send time, not
from when it was actually written: a slow answer then shows up in the latencies of the requests
queued behind it instead of silently lowering the rate (coordinated omission). A connection sends
its next request only after the previous answer, so CONNECTIONS must exceed rate x latency for the
schedule to hold; the achieved req/s is printed next to the target for that reason.

Usage:
  bench/fixed-rate.py URL [--rate 1000] [--duration 10] [--connections 64]
                          [--method GET] [--body-file FILE] [--header 'K: V']... [--json]

Prints one line (or, with --json, one JSON object):
  requests=N  req/s=R (target T)  p50=…ms  p90=…ms  p99=…ms  p99.9=…ms  max=…ms  non2xx=N
Plain http:// only; the answer must carry Content-Length or be chunked.
"""
import argparse, asyncio, json, sys, time
from urllib.parse import urlsplit


async def read_response(reader):
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
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
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return int(status_line.split()[1])


async def run(host, port, request, rate, seconds, conns):
    total = int(rate * seconds)
    latencies, statuses = [], {}
    next_i = 0
    t0 = time.perf_counter() + 0.2

    async def worker():
        nonlocal next_i
        reader, writer = await asyncio.open_connection(host, port)
        while True:
            i = next_i
            if i >= total:
                break
            next_i += 1
            target = t0 + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request)
            await writer.drain()
            code = await read_response(reader)
            latencies.append(time.perf_counter() - target)
            statuses[code] = statuses.get(code, 0) + 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "target": rate,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "p99_9_ms": pct(99.9),
        "max_ms": latencies[-1] * 1000,
        "non2xx": sum(n for c, n in statuses.items() if not 200 <= c < 300),
    }


def build_request(url, method, headers, body):
    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        sys.exit(f"fixed-rate.py: {url!r} is not an http://host[:port]/path URL")
    port = u.port or 80
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    head = f"{method} {path} HTTP/1.1\r\nHost: {u.hostname}:{port}\r\n"
    for h in headers:
        if ":" not in h:
            sys.exit(f"fixed-rate.py: --header {h!r} is not 'Name: value'")
        head += h.strip() + "\r\n"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return u.hostname, port, head.encode() + b"\r\n" + (body or b"")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("--rate", type=float, default=1000, help="requests per second (default 1000)")
    ap.add_argument("--duration", type=float, default=10, help="seconds (default 10)")
    ap.add_argument("--connections", type=int, default=64, help="keep-alive connections (default 64)")
    ap.add_argument("--method", default="GET")
    ap.add_argument("--body-file", help="the request body, sent with Content-Length")
    ap.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    a = ap.parse_args()
    body = open(a.body_file, "rb").read() if a.body_file else None
    host, port, request = build_request(a.url, a.method, a.header, body)
    r = asyncio.run(run(host, port, request, a.rate, a.duration, a.connections))
    if a.json:
        print(json.dumps(r))
    else:
        print(f"requests={r['requests']}  req/s={r['rps']:.0f} (target {a.rate:g})  "
              f"p50={r['p50_ms']:.2f}ms  p90={r['p90_ms']:.2f}ms  p99={r['p99_ms']:.2f}ms  "
              f"p99.9={r['p99_9_ms']:.2f}ms  max={r['max_ms']:.2f}ms  non2xx={r['non2xx']}")


if __name__ == "__main__":
    main()
