-- Point 2 of issue 12: one request shape against the API whose cache never
-- answers, so every request is a miss through the whole stack.
-- args: data file, path ("{order}" takes the big customer's order ids in turn),
-- whose token: "big" (the customer with 2,000 orders), "staff" or "any".
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  local data = read_data(args[1])
  local path, who = args[2], args[3]
  local tokens = {}
  if who == "big" then tokens = { data.big[1][1] }
  elseif who == "staff" then tokens = { data.staff[1][1] }
  else for _, c in ipairs(data.customer) do table.insert(tokens, c[2]) end end
  local orders = data.bigorder or { { "0" } }
  for i = 1, 500 do
    local p = path:gsub("{order}", orders[(i - 1) % #orders + 1][1])
    table.insert(reqs, wrk.format("GET", p, bearer(tokens[(i - 1) % #tokens + 1])))
  end
  start_rotation()
end
