-- wrk script for W1-W3, W6 and W8. The workload and its inputs come from the environment:
--   BENCH_WORKLOAD  get | create | search | issues | parts | stock
--   BENCH_TOKEN     bearer token (empty for the floor, which has no auth)
--   BENCH_INPUT     file of ids (get), search terms (search, issues, parts) or stocked
--                   locations, "CODE BOX LOC" (stock), one per line
--   BENCH_PHONE     E.164 prefix for create's phones (all but 6 digits), unique per run
-- At the end it prints one JSON line that the harness reads.

local workload = os.getenv("BENCH_WORKLOAD")
local token = os.getenv("BENCH_TOKEN") or ""
local phone_prefix = os.getenv("BENCH_PHONE") or "+4915100"
local run_tag = os.getenv("BENCH_RUN") or "run"

local threads = {}
local lines = {}
local counter = 0

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local input = os.getenv("BENCH_INPUT")
  if input and input ~= "" then
    for line in io.lines(input) do
      lines[#lines + 1] = line
    end
  end
  math.randomseed(os.time() * 100 + thread_index)
  wrk.headers["Accept"] = "application/json"
  if token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
  if workload == "create" or workload == "stock" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

local function encode(text)
  return (text:gsub("[^%w%-_.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function request()
  if workload == "get" then
    return wrk.format(nil, "/api/v1/contacts/" .. lines[math.random(#lines)])
  elseif workload == "search" then
    local term = encode(lines[math.random(#lines)])
    return wrk.format(
      nil, "/api/v1/contacts?is_active=true&search=" .. term .. "&sort_by=name&limit=50"
    )
  elseif workload == "issues" then
    local term = encode(lines[math.random(#lines)])
    return wrk.format(
      nil, "/api/v1/issues?search=" .. term .. "&sort_by=created_at&sort_order=desc&limit=50"
    )
  elseif workload == "parts" then
    local term = encode(lines[math.random(#lines)])
    return wrk.format(nil, "/api/v1/parts?search=" .. term .. "&limit=50")
  end
  counter = counter + 1
  if workload == "stock" then
    -- One piece in, one piece out, by turns: the seeded thousands never run out.
    local code, box, loc = lines[math.random(#lines)]:match("(%S+) (%S+) (%S+)")
    local action = (counter % 2 == 1) and "add" or "remove"
    local body = string.format('{"box_no":%s,"loc_no":%s,"quantity":1}', box, loc)
    return wrk.format(nil, "/api/v1/parts/" .. code .. "/stock/" .. action, nil, body)
  end
  local n = thread_index * 100000 + counter
  local body = string.format(
    '{"name":"Bench Writer %d","email":"%s.%d@bench.example.com","phone":"%s%06d",'
      .. '"company":"Bench Ltd"}',
    n, run_tag, n, phone_prefix, n
  )
  return wrk.format(nil, "/api/v1/contacts", nil, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
      .. '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max
  ))
end
