-- S4 (args[2] = "spread"): orders of two distinct random products, quantity 1 each.
-- S5 (args[2] = "hot"): orders of one unit of the one hot product.
-- Every order has the same number of units (see UNITS_PER_ORDER in bench/load.py),
-- so the harness can check stock sold = 2xx responses x units.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  local data = read_data(args[1])
  local customers, products = data.customer, data.product
  math.randomseed(tid * 104729)
  for i = 1, 2000 do
    local c = customers[(i + tid) % #customers + 1]
    local body
    if args[2] == "hot" then
      body = string.format('{"items":[{"product_id":%s,"quantity":1}]}', data.hot[1][1])
    else
      local a = math.random(#products)
      local b = (a + math.random(#products - 1) - 1) % #products + 1
      body = string.format('{"items":[{"product_id":%s,"quantity":1},{"product_id":%s,"quantity":1}]}',
        products[a][1], products[b][1])
    end
    table.insert(reqs, wrk.format("POST", "/api/orders/", bearer(c[2]), body))
  end
  start_rotation()
end
