-- wrk script: POST /oauth/token with an unknown client_id (the unauthenticated flood of
-- docs/security.md). Prints the answers by status.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&client_id=nobody&client_secret=guess"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function() counts = {} end
response = function(status) counts[status] = (counts[status] or 0) + 1 end

done = function(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do all[k] = (all[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(all) do table.insert(parts, k .. ":" .. v) end
  io.write(string.format("RESULT requests=%d rps=%.0f statuses=%s\n", summary.requests,
    summary.requests / (summary.duration / 1e6), table.concat(parts, ",")))
end
