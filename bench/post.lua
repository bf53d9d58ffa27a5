-- wrk script: POST JSON bodies to the URL given on wrk's command line, rotating through
-- every line of the file named by BENCH_BODIES (one JSON body per line), so the server
-- embeds varied sentences rather than one repeated request.
--   BENCH_BODIES=bodies.jsonl wrk -t1 -c32 -d10s --latency -s bench/post.lua URL

local path = os.getenv("BENCH_BODIES")
if path == nil or path == "" then
  error("set BENCH_BODIES to a file of JSON bodies, one per line")
end

local bodies = {}
for line in io.lines(path) do
  if #line > 0 then
    bodies[#bodies + 1] = line
  end
end
if #bodies == 0 then
  error("no bodies in " .. path)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- Each wrk thread has its own Lua state: build the raw requests once, then only rotate.
local requests = {}
local next_index = 0

function init(args)
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format(nil, nil, nil, body)
  end
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
