-- wrk script: POST /v1/batch with NUDGE_BENCH_BATCH messages per call (default 100), each
-- with its own messageId and user, as SDKs flush their queues.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "events.lua")

local per_call = tonumber(os.getenv("NUDGE_BENCH_BATCH") or "") or 100

wrk.method = "POST"
wrk.path = "/v1/batch"
wrk.headers["Content-Type"] = "application/json"

function request()
  local parts = {}
  for i = 1, per_call do
    parts[i] = bench_message()
  end
  return wrk.format(nil, nil, nil, '{"batch":[' .. table.concat(parts, ",") .. ']}')
end
