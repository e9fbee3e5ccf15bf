-- wrk script for bench/run.sh. Every request is the same chat completion, so
-- after the first one each proxy serves it from its cache.
--
-- Usage: wrk ... -s bench/post.lua URL -- BODY_FILE
-- BODY_FILE contains the JSON request body, the same file that run.sh sends
-- with curl to warm the cache. No response() callback is defined, because
-- with one wrk hands every response to Lua, which lowers the rate it drives.

function init(args)
  local path = args[1]
  if path == nil then
    error("post.lua: missing BODY_FILE argument after --")
  end
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
