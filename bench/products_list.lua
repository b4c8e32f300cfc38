-- S1: the filtered, ordered product list with a customer token (tokens rotate), warm cache.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  local data = read_data(args[1])
  for _, c in ipairs(data.customer) do
    table.insert(reqs, wrk.format("GET", "/api/products/?category=electronics&ordering=price", bearer(c[2])))
  end
  start_rotation()
end
