-- wrk script for bench/run.mjs: prints one machine-readable line when the run ends.
-- wrk keeps latencies in microseconds; summary.duration is in microseconds too.
-- wrk counts only status >= 400 in errors.status (3xx pass), which is what we flag.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"loadgen":"wrk","requests":%d,"durationS":%.6f,"p50Ms":%.4f,"p90Ms":%.4f,"p99Ms":%.4f,"maxMs":%.4f,' ..
    '"errors":%d,"timeouts":%d,"non2xx":%d}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write, e.timeout, e.status))
end
