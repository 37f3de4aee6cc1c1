-- wrk script: POST /v1/ccp/signedContractData with EV requests and a bearer token (TOKEN).
-- BODY_FILE is one JSON body, or (ending in .jsonl) one body per line, sent in turn: a request
-- answered before is answered again from the store (a replay), so a load test of real
-- installations (a new contract key and certificate, the key encrypted for the car, the answer
-- signed with the CPS key, all recorded) needs a distinct request each time. With fewer lines
-- than requests, the later ones are replays; `done` says how many lines there were.
local path = os.getenv("BODY_FILE")
local bodies = {}
local f = assert(io.open(path, "rb"))
if path:sub(-6) == ".jsonl" then
  for line in f:lines() do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
else
  bodies[1] = f:read("*a")
end
f:close()
wrk.method = "POST"
wrk.body = bodies[1]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

-- Thread k of WRK_THREADS sends lines k, k + WRK_THREADS, …: two threads never send the same line.
local n = 0
local started = 0
setup = function(thread)
  thread:set("offset", started)
  thread:set("stride", tonumber(os.getenv("WRK_THREADS") or "1"))
  started = started + 1
end
request = function()
  local i = (n * (stride or 1) + (offset or 0)) % #bodies + 1
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[i])
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d distinct_bodies=%d seconds=%.1f rps=%.1f p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f errors=%d\n",
    summary.requests, #bodies, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
