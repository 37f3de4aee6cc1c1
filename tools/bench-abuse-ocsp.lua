-- wrk script: POST /ocsp for random serials (a flood of "unknown" questions, each of which
-- wanted a live signature before the budget). Env: REQ_FILE (a DER OCSP request made by
-- openssl), SERIAL_HEX (the serial in it, replaced by random bytes of the same length).
local f = assert(io.open(os.getenv("REQ_FILE"), "rb"))
local template = f:read("*a")
f:close()
local hex = os.getenv("SERIAL_HEX")
local serial = (hex:gsub("..", function(h) return string.char(tonumber(h, 16)) end))
local at = assert(template:find(serial, 1, true), "serial not in the request")
local n = #serial

init = function() math.randomseed(os.time() + math.floor(os.clock() * 1e6)) end
request = function()
  local b = { string.char(math.random(1, 127)) }
  for i = 2, n do b[i] = string.char(math.random(0, 255)) end
  local body = template:sub(1, at - 1) .. table.concat(b) .. template:sub(at + n)
  return wrk.format("POST", "/ocsp", { ["Content-Type"] = "application/ocsp-request" }, body)
end

done = function(summary)
  io.write(string.format("RESULT requests=%d rps=%.0f\n", summary.requests,
    summary.requests / (summary.duration / 1e6)))
end
