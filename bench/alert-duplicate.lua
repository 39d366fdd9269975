-- wrk script: the duplicate path. POSTs the same firing Alertmanager notification over and over,
-- as an Alertmanager HA pair or a retrying sender does; after the first one, each is answered
-- 200 with "duplicates":1 and nothing is written.
-- Usage: TOKEN=<alertmanager source token> wrk -t2 -c16 -d10s -s bench/alert-duplicate.lua http://127.0.0.1:18080
local token = os.getenv("TOKEN")
wrk.method = "POST"
wrk.path = "/webhooks/alertmanager"
wrk.headers["Content-Type"] = "application/json"
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.body = [[{"version":"4","groupKey":"{}/{severity=\"critical\"}:{alertname=\"MySQLDown\"}","truncatedAlerts":0,"status":"firing","receiver":"spotter","groupLabels":{"alertname":"MySQLDown"},"commonLabels":{"alertname":"MySQLDown","job":"mysqld","severity":"critical","service":"database"},"commonAnnotations":{"summary":"MySQL is not answering"},"externalURL":"http://alertmanager.example:9093","alerts":[{"status":"firing","labels":{"alertname":"MySQLDown","instance":"db-1:9104","job":"mysqld","severity":"critical","service":"database"},"annotations":{"summary":"MySQL is not answering","description":"mysqld_up == 0 on db-1 for 1m"},"startsAt":"2026-11-26T09:58:12.123Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.example:9090/graph?g0.expr=mysql_up+%3D%3D+0","fingerprint":"bench-duplicate-0001"}]}]]

-- done() runs in wrk's main Lua state: only wrk's own summary reaches it. Non-2xx answers are
-- in summary.errors.status (wrk also prints "Non-2xx or 3xx responses").
done = function(summary, latency, requests)
  io.write(string.format("requests=%d  req/s=%.0f  p50=%.2fms  p99=%.2fms  non2xx=%d  socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
