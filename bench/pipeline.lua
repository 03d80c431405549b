-- wrk: send 16 requests at once on each connection (HTTP pipelining depth 16).
-- wrk counts every response, so its request total is responses received.
init = function(args)
  local depth = tonumber(os.getenv("PIPELINE") or "16")
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, "/")
  end
  req = table.concat(r)
end

request = function()
  return req
end
