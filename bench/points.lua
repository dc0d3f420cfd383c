-- wrk script for bench/points.sh: point spends by a shop's back end.
--
--   wrk ... -s bench/points.lua BASE_URL -- USERS_FILE SERVICE_KEY THREADS RUN
--
-- Every request is POST /api/v1/users/{user}/points/spend with the service
-- key, 1 point, and a reference of its own (RUN, the thread id and a
-- counter), so none is a repeat, in this run or another. The user is the next line of USERS_FILE (one user id per
-- line; a file of one line is the hot-user run); thread k starts k/THREADS of
-- the way into it. Statuses other than 201 are counted and reported, then one
-- machine-readable "@@" line, as bench/issue.lua does.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_statuses.lua")

local users = {}
local n = 0
local i = 0
local k = 0
local headers = {}
local run = ""

function init(args)
   local file = args[1] or error("usage: -- USERS_FILE SERVICE_KEY THREADS")
   headers["Authorization"] = "Bearer " .. (args[2] or error("no service key"))
   headers["Content-Type"] = "application/json"
   local nthreads = tonumber(args[3]) or 1
   run = args[4] or error("no RUN tag")
   for user in io.lines(file) do
      if user ~= "" then
         n = n + 1
         users[n] = "/api/v1/users/" .. user .. "/points/spend"
      end
   end
   if n == 0 then
      error("no users in " .. file)
   end
   i = (id * math.floor(n / nthreads)) % n
end

function request()
   i = i % n + 1
   k = k + 1
   local body = string.format('{"amount":1,"reference":"%s-%d-%d","reason":"bench"}', run, id, k)
   return wrk.format("POST", users[i], headers, body)
end
