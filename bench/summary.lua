-- wrk script for bench/stats.sh: GET the URL with the admin's bearer token
-- (env ADMIN_TOKEN). Non-200 answers are counted as errors in the "@@" line
-- (as "non201", the shared field name).

expected = 200
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_statuses.lua")

local req

function init(args)
   req = wrk.format("GET", nil, { Authorization = "Bearer " .. os.getenv("ADMIN_TOKEN") })
end

function request()
   return req
end
