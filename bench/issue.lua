-- wrk script for bench/issue-throughput.sh.
--
--   wrk ... -s bench/issue.lua URL -- TOKENS_FILE THREADS [BODY]
--
-- Every request carries the next user's bearer token from TOKENS_FILE (one
-- token per line); thread k starts k/THREADS of the way into the file, so
-- consecutive requests, and the requests in flight, come from distinct users.
-- BODY, if given, is sent with Content-Type: application/json (the bare
-- baseline gets "{}" so its JSON extractor runs; the issue endpoint gets none).
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

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local requests = {}
local n = 0
local i = 0
statuses = {}
non201 = 0

function init(args)
   local file = args[1] or error("usage: -- TOKENS_FILE THREADS [BODY]")
   local nthreads = tonumber(args[2]) or 1
   local body = args[3]
   local headers = {}
   if body then
      headers["Content-Type"] = "application/json"
   end
   for token in io.lines(file) do
      if token ~= "" then
         headers["Authorization"] = "Bearer " .. token
         n = n + 1
         requests[n] = wrk.format("POST", nil, headers, body)
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

function response(status, headers, body)
   if status ~= 201 then
      non201 = non201 + 1
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local bad = 0
   local by_status = {}
   for _, thread in ipairs(threads) do
      bad = bad + thread:get("non201")
      for status, count in pairs(thread:get("statuses")) do
         by_status[status] = (by_status[status] or 0) + count
      end
   end
   local detail = {}
   for status, count in pairs(by_status) do
      table.insert(detail, status .. "x" .. count)
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format("non-201 responses: %d %s\n", bad, table.concat(detail, " ")))
   io.write(string.format(
      "@@ requests=%d secs=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f non201=%d statuses=%s sock_connect=%d sock_read=%d sock_write=%d sock_timeout=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000,
      bad, #detail > 0 and table.concat(detail, ",") or "-",
      e.connect, e.read, e.write, e.timeout))
end
