-- wrk script for bench/issue-throughput.sh.
--
--   wrk ... -s bench/issue.lua URL -- TOKENS_FILE THREADS [BODY]
--
-- Every request carries the next user's bearer token from TOKENS_FILE (one
-- token per line); thread k starts k/THREADS of the way into the file, so
-- consecutive requests, and the requests in flight, come from distinct users.
-- BODY, if given, is sent with Content-Type: application/json (the bare
-- baseline gets "{}" so its JSON extractor runs; the issue endpoint gets none).
-- A line may carry its own body after a tab ("TOKEN\tBODY": a time-sale
-- order's coupon and points in bench/sales.sh), which wins over BODY.
-- Requests are formatted once in init, so wrk spends the same per-request CPU
-- on both sides. Statuses other than 201 are counted per thread and reported
-- in done(), followed by one machine-readable "@@" line for the shell script.

-- PACE_MS (env), if set, makes each connection wait that long between
-- requests: an open-ish load at a chosen rate (bench/abuse.sh), where the
-- latency measured is service time rather than queueing behind wrk.
local pace = tonumber(os.getenv("PACE_MS") or "")
if pace then
   function delay()
      return pace
   end
end

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_statuses.lua")

local requests = {}
local n = 0
local i = 0

function init(args)
   local file = args[1] or error("usage: -- TOKENS_FILE THREADS [BODY]")
   local nthreads = tonumber(args[2]) or 1
   local body = args[3]
   local headers = {}
   if body then
      headers["Content-Type"] = "application/json"
   end
   for line in io.lines(file) do
      if line ~= "" then
         local token, own = line:match("^([^\t]+)\t(.*)$")
         local h = {}
         for k, v in pairs(headers) do
            h[k] = v
         end
         if own then
            h["Content-Type"] = "application/json"
         else
            token = line
         end
         h["Authorization"] = "Bearer " .. token
         n = n + 1
         requests[n] = wrk.format("POST", nil, h, own or body)
      end
   end
   if n == 0 then
      error("no tokens in " .. file)
   end
   i = (id * math.floor(n / nthreads)) % n
end

function request()
   i = i % n + 1
   return requests[i]
end
