-- S3: GET /api/orders/{id}/ by its owner, over every seeded order, warm cache.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  local data = read_data(args[1])
  for _, o in ipairs(data.order) do
    table.insert(reqs, wrk.format("GET", "/api/orders/" .. o[2] .. "/", bearer(o[1])))
  end
  start_rotation()
end
