-- S2: GET /api/products/{id}/ over every seeded product, customer tokens rotating.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  local data = read_data(args[1])
  local customers = data.customer
  for i, p in ipairs(data.product) do
    local c = customers[i % #customers + 1]
    table.insert(reqs, wrk.format("GET", "/api/products/" .. p[1] .. "/", bearer(c[2])))
  end
  start_rotation()
end
