-- wrk script for bench/sales.sh: claims and time-sale orders from distinct users.
--
--   wrk ... -s bench/orders.lua URL -- LINES_FILE THREADS
--
-- Each line of LINES_FILE is a bearer token, optionally followed by a tab and
-- a JSON body (an order's coupon and points: each line its own coupon, used
-- once). Every request is a POST to URL with the next line; thread k starts
-- k/THREADS of the way into the file. Requests are formatted once in init.
-- Statuses other than 201 are counted and reported, then one
-- machine-readable "@@" line, as bench/issue.lua does.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_statuses.lua")

local requests = {}
local n = 0
local i = 0

function init(args)
   local file = args[1] or error("usage: -- LINES_FILE THREADS")
   local nthreads = tonumber(args[2]) or 1
   for line in io.lines(file) do
      if line ~= "" then
         local token, body = line:match("^([^\t]+)\t(.*)$")
         local headers = {}
         if token then
            headers["Content-Type"] = "application/json"
         else
            token = line
         end
         headers["Authorization"] = "Bearer " .. token
         n = n + 1
         requests[n] = wrk.format("POST", nil, headers, body)
      end
   end
   if n == 0 then
      error("no lines in " .. file)
   end
   i = (id * math.floor(n / nthreads)) % n
end

function request()
   i = i % n + 1
   return requests[i]
end
