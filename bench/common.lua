-- Shared by every scenario script (loaded with dofile): reads the data file
-- written by the harness, cycles through pre-built requests, counts status
-- classes (wrk itself only reports non-2xx in aggregate) and prints one JSON
-- line for the harness to parse.

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

-- data file lines: "<kind> <field> <field> ..."; returns kind -> list of field lists
function read_data(path)
  local data = {}
  for line in io.lines(path) do
    local fields = {}
    for f in line:gmatch("%S+") do table.insert(fields, f) end
    local kind = table.remove(fields, 1)
    if kind then
      data[kind] = data[kind] or {}
      table.insert(data[kind], fields)
    end
  end
  return data
end

function bearer(token)
  return { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
end

reqs = {}
n = 0
s2, s3, s4, s5 = 0, 0, 0, 0

-- each scenario's init fills `reqs` with wrk.format(...) strings
function start_rotation()
  n = ((tid or 1) * 7919) % #reqs
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

function response(status, headers, body)
  if status >= 500 then s5 = s5 + 1
  elseif status >= 400 then s4 = s4 + 1
  elseif status >= 300 then s3 = s3 + 1
  else s2 = s2 + 1 end
end

function done(summary, latency, requests)
  local c = { s2 = 0, s3 = 0, s4 = 0, s5 = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do c[k] = c[k] + (t:get(k) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"status_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"s2xx":%d,"s3xx":%d,"s4xx":%d,"s5xx":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    c.s2, c.s3, c.s4, c.s5))
end
