-- Shared by the wrk scripts (bench/issue.lua, bench/points.lua): each
-- thread counts the statuses other than 201, and done() reports them and one
-- machine-readable "@@" line (requests, rate, latency percentiles, errors)
-- for the shell scripts. Loaded with dofile() from beside the script.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

statuses = {}
non201 = 0
-- The status every answer should have; a script may set it before loading
-- this file (bench/summary.lua reads: 200).
expected = expected or 201

function response(status, headers, body)
   if status ~= expected then
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
