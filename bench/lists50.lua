-- M1's list readers: 50 distinct product-list URLs (filters, orderings, pages),
-- customer tokens rotating, the way a shop's catalogue pages are browsed.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local categories = { "electronics", "clothing", "books", "home", "sports", "toys" }
local orderings = { "price", "-price", "name", "-created_at" }

function lists()
  local urls = {}
  for _, c in ipairs(categories) do
    for _, o in ipairs(orderings) do
      table.insert(urls, "/api/products/?category=" .. c .. "&ordering=" .. o)
    end
    table.insert(urls, "/api/products/?category=" .. c .. "&in_stock=true&page=2")
    table.insert(urls, "/api/products/?category=" .. c .. "&price_min=10&price_max=50")
  end
  -- 48 so far; two unfiltered pages
  table.insert(urls, "/api/products/")
  table.insert(urls, "/api/products/?page=2")
  return urls
end

function init(args)
  local data = read_data(args[1])
  local customers = data.customer
  for i, u in ipairs(lists()) do
    for j = 1, #customers do
      local c = customers[(i + j) % #customers + 1]
      table.insert(reqs, wrk.format("GET", u, bearer(c[2])))
    end
  end
  start_rotation()
end
