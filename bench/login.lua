-- S6: POST /api/auth/login/ with the right password, customers rotating (bounded by Argon2).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  local data = read_data(args[1])
  local password = data.password[1][1]
  for _, c in ipairs(data.customer) do
    local body = string.format('{"email":"%s","password":"%s"}', c[1], password)
    table.insert(reqs, wrk.format("POST", "/api/auth/login/", { ["Content-Type"] = "application/json" }, body))
  end
  start_rotation()
end
