-- C0 ceiling: GET /health/live, no authentication, no work.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  reqs = { wrk.format("GET", "/health/live") }
  start_rotation()
end
