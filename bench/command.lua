-- wrk script: POST one chat command to /api/v1/commands.
-- Usage: TOKEN=... TEXT='/incident show incident:INC-1' wrk -t2 -c16 -d10s -s bench/command.lua http://127.0.0.1:8080
local token = os.getenv("TOKEN")
local text = os.getenv("TEXT") or "/incident show incident:INC-1"
local user = os.getenv("AS") or "sysadmin"
wrk.method = "POST"
wrk.path = "/api/v1/commands"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.body = string.format('{"text": %q, "user": %q}', text, user)

-- wrk reports non-2xx answers itself ("Non-2xx or 3xx responses"); the bench script checks
-- the store afterwards that every write landed.
done = function(summary, latency, requests)
  io.write(string.format("requests=%d  req/s=%.0f  p50=%.2fms  p99=%.2fms\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
