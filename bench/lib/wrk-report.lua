-- wrk script for bench/run.mjs. Request headers come from BENCH_HEADERS (a flat JSON object of
-- strings, e.g. {"x-api-key":"kg_…"}) so that a token never appears on wrk's command line.
-- When the run ends it prints one machine-readable line. wrk keeps latencies and
-- summary.duration in microseconds, and counts only status >= 400 in errors.status.
local spec = os.getenv("BENCH_HEADERS") or "{}"
for name, value in spec:gmatch('"([^"]+)"%s*:%s*"([^"]*)"') do
  wrk.headers[name] = value
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"loadgen":"wrk","requests":%d,"durationS":%.6f,"p50Ms":%.4f,"p90Ms":%.4f,"p99Ms":%.4f,"maxMs":%.4f,' ..
    '"errors":%d,"timeouts":%d,"non2xx":%d}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write, e.timeout, e.status))
end
