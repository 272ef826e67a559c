-- bench/ranges' wrk script: Range requests over one object, then the common reporter.
--   RANGE_MODE=random      random RANGE_LENGTH-byte ranges at any byte offset of the object
--   RANGE_MODE=sequential  consecutive RANGE_LENGTH-byte ranges; each thread starts at a random
--                          range and wraps around at the object's end
-- RANGE_OBJECT_SIZE is the object's length in bytes. (No setup() or thread:set: an earlier
-- version that passed thread numbers that way made wrk's LuaJIT panic now and then.)
local size = tonumber(os.getenv("RANGE_OBJECT_SIZE"))
local length = tonumber(os.getenv("RANGE_LENGTH"))
local sequential = os.getenv("RANGE_MODE") == "sequential"
local chunks = math.floor(size / length)
local next_chunk = 0

function init(args)
   -- Each thread has its own Lua state: a table's address tells them apart.
   math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
   next_chunk = math.random(0, chunks - 1)
end

function request()
   local first
   if sequential then
      if next_chunk >= chunks then next_chunk = 0 end
      first = next_chunk * length
      next_chunk = next_chunk + 1
   else
      first = math.random(0, size - length)
   end
   return wrk.format(nil, nil, {["Range"] = "bytes=" .. first .. "-" .. (first + length - 1)})
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
