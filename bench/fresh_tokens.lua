-- wrk script: a different bearer token on every request, so the proxy's
-- verified-token cache never hits (the "no reuse" scenario).
--   wrk -t1 -c64 -d10s -s bench/fresh_tokens.lua URL -- TOKENS_FILE [PATH]
-- Tokens are loaded in init(), before wrk starts its clock. done() prints how many
-- were sent and how often the list wrapped (a wrap means some tokens were reused).
local tokens = {}
count = 0
idx = 0
wraps = 0
sent = 0
path = "/api/orders"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  if args[2] then
    path = args[2]
  end
  for line in io.lines(args[1]) do
    if #line > 0 then
      count = count + 1
      tokens[count] = "Bearer " .. line
    end
  end
end

function request()
  idx = idx + 1
  sent = sent + 1
  if idx > count then
    idx = 1
    wraps = wraps + 1
  end
  return wrk.format("GET", path, { ["Authorization"] = tokens[idx] })
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("FRESH_TOKENS count=%d sent=%d wraps=%d\n",
      t:get("count"), t:get("sent"), t:get("wraps")))
  end
end
