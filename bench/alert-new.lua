-- wrk script: the new-alert path. Every request is a firing Alertmanager notification with a
-- fingerprint never seen before, generated here per request.
-- Env: TOKEN (the alertmanager source's token, optional from loopback), RUN (a prefix unique to
-- this run, so reruns against the same database stay new), GROUPS: how many alert names to
-- cycle through. Alerts of one name join one incident (the default route groups by alertname and
-- service), so GROUPS=8 (default) measures new alerts joining 8 open incidents; GROUPS=0 gives
-- every alert its own name, so every request declares (and pages for) a new incident.
-- Usage: TOKEN=... RUN=r1 GROUPS=8 wrk -t2 -c16 -d10s -s bench/alert-new.lua http://127.0.0.1:18080
local token = os.getenv("TOKEN")
local run = os.getenv("RUN") or tostring(os.time())
local groups = tonumber(os.getenv("GROUPS") or "8")

local headers = { ["Content-Type"] = "application/json" }
if token and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end
wrk.method = "POST"
wrk.path = "/webhooks/alertmanager"

local template = [[{"version":"4","groupKey":"{}:{alertname=\"%s\"}","truncatedAlerts":0,"status":"firing","receiver":"spotter","groupLabels":{"alertname":"%s"},"commonLabels":{"alertname":"%s","service":"database","severity":"critical"},"commonAnnotations":{},"externalURL":"http://alertmanager.example:9093","alerts":[{"status":"firing","labels":{"alertname":"%s","instance":"%s","service":"database","severity":"critical"},"annotations":{"summary":"bench alert %s"},"startsAt":"2026-11-26T09:58:12.123Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.example:9090/graph","fingerprint":"%s"}]}]]

-- setup() runs in the main state once per thread; thread:set() gives each thread's own Lua state
-- its number (a global, so that set() reaches it).
thread_id = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
function request()
  counter = counter + 1
  local fp = string.format("%s-t%d-%d", run, thread_id, counter)
  local name
  if groups > 0 then
    name = string.format("BenchNew%d", counter % groups)
  else
    name = "BenchNew-" .. fp
  end
  local body = string.format(template, name, name, name, name, fp, fp, fp)
  return wrk.format(nil, nil, headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("requests=%d  req/s=%.0f  p50=%.2fms  p99=%.2fms  non2xx=%d  socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
