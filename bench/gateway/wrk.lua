-- wrk script for bench/gateway.sh. Configured through the environment (the same script for every target,
-- so every target gets the same request bytes and the same client-side work):
--   BENCH_TAG       JSON object fields copied into the result line, e.g. "target":"direct","mode":"latency"
--   BENCH_KEY       API key sent as `Authorization: Bearer …` (sent to every target, used by the gateway)
--   BENCH_BODY      when set: POST this body as application/json (the local-model predict benchmark)
--   BENCH_HOOK=1    define a `response` hook: count 5xx and sum the gateway's x-aegis-overhead-ms header.
--                   wrk records a request's latency before calling the hook, so latencies are unaffected,
--                   but parsing headers in Lua costs client CPU: it is only used in the -c1 latency runs.
-- done() prints one line `RESULT {json}` with requests, rate, latency percentiles (µs) and errors.

local key = os.getenv("BENCH_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  overhead_sum = 0
  overhead_n = 0
  s5xx = 0
  statuses = 0
end

if os.getenv("BENCH_HOOK") == "1" then
  function response(status, headers, body)
    statuses = statuses + 1
    if status >= 500 then
      s5xx = s5xx + 1
    end
    local v = headers["x-aegis-overhead-ms"] or headers["X-Aegis-Overhead-Ms"]
    if v then
      local n = tonumber(v)
      if n then
        overhead_sum = overhead_sum + n
        overhead_n = overhead_n + 1
      end
    end
  end
end

function done(summary, latency, requests)
  local osum, on, s5, seen = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    osum = osum + (t:get("overhead_sum") or 0)
    on = on + (t:get("overhead_n") or 0)
    s5 = s5 + (t:get("s5xx") or 0)
    seen = seen + (t:get("statuses") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {%s,"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"non2xx3xx":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d,"hooked_responses":%d,"hooked_5xx":%d,"overhead_sum_ms":%.3f,"overhead_n":%d}\n',
    os.getenv("BENCH_TAG") or '"target":"?"',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, e.status, e.connect, e.read, e.write, e.timeout,
    seen, s5, osum, on))
end
