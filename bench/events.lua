-- Event generator shared by track.lua and batch.lua (wrk scripts of scripts/bench-serve.sh).
-- Messages look like analytics.js sends them (messageId, type, event, properties, context),
-- about 450 bytes each, for events of the saas-onboarding tracking plan with valid
-- properties. Every message has a unique messageId (run, wrk thread, counter) and a userId
-- drawn at random from a pool of NUDGE_BENCH_USERS users (default 10000).

local users = tonumber(os.getenv("NUDGE_BENCH_USERS") or "") or 10000
local run = os.getenv("NUDGE_BENCH_RUN") or "run"
local steps = { "account", "profile", "team", "integrations", "payment" }
local features = { "boards", "search", "export", "comments", "api" }
local labels = { "Connect Payment Method", "Invite Teammate", "Upgrade", "Dismiss" }

-- Property JSON of each kind of event; weights follow a product's usual traffic.
local kinds = {
  { w = 30, event = "Feature Used", props = function(r) return '{"feature":"' .. features[r(#features)] .. '"}' end },
  { w = 20, event = "Button Clicked", props = function(r) return '{"label":"' .. labels[r(#labels)] .. '"}' end },
  { w = 15, event = "Onboarding Step Viewed", props = function(r) local i = r(5); return '{"step":"' .. steps[i] .. '","step_index":' .. i .. '}' end },
  { w = 10, event = "Onboarding Step Completed", props = function(r) local i = r(5); return '{"step":"' .. steps[i] .. '","step_index":' .. i .. '}' end },
  { w = 8, event = "Help Article Viewed", props = function(r) return '{"article":"getting-started-' .. r(40) .. '"}' end },
  { w = 5, event = "Login Failed", props = function() return '{}' end },
  { w = 4, event = "Onboarding Step Skipped", props = function(r) local i = r(5); return '{"step":"' .. steps[i] .. '","step_index":' .. i .. '}' end },
  { w = 4, event = "Signed Up", props = function() return '{"plan":"trial"}' end },
  { w = 2, event = "Profile Completed", props = function(r) return '{"completion_percentage":' .. (50 + r(50)) .. '}' end },
  { w = 2, event = "Onboarding Completed", props = function() return '{}' end },
}
local pick = {}
for i, k in ipairs(kinds) do
  for _ = 1, k.w do pick[#pick + 1] = i end
end

local r = math.random
local seq = 0
local thread_id = 0

function bench_seed(id)
  thread_id = id
  math.randomseed(id * 7919 + os.time())
end

-- One message as JSON (a track call body, or an element of a batch).
function bench_message()
  seq = seq + 1
  local k = kinds[pick[r(#pick)]]
  local user = r(users)
  return '{"type":"track","messageId":"' .. run .. '-' .. thread_id .. '-' .. seq
    .. '","userId":"bench-user-' .. user .. '","event":"' .. k.event
    .. '","properties":' .. k.props(r)
    .. ',"context":{"library":{"name":"analytics.js","version":"2.11.1"},'
    .. '"ip":"203.0.113.' .. (user % 250) .. '","locale":"en-US","timezone":"Europe/Berlin",'
    .. '"page":{"path":"/app/onboarding","url":"https://app.example.com/app/onboarding",'
    .. '"title":"Onboarding"}}}'
end

-- wrk's hooks: number the threads, and print the figures the script parses.
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("bench_thread", #threads)
end

function init(args)
  bench_seed(bench_thread or 1)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
