-- bench/run's script for the gzip rows: every request says Accept-Encoding: gzip, as a
-- browser or an API client would; then the common reporter (report.lua, next to this file).
wrk.headers["Accept-Encoding"] = "gzip"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
