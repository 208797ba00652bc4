-- wrk script: one Segment `track` call per request (POST /v1/track), a new messageId each
-- time, the user drawn from a pool. Auth comes from the command line
-- (-H "Authorization: Basic ...").
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "events.lua")

wrk.method = "POST"
wrk.path = "/v1/track"
wrk.headers["Content-Type"] = "application/json"

function request()
  return wrk.format(nil, nil, nil, bench_message())
end
