-- bench/ranges' wrk script: Range requests over one object, then the common reporter.
--   RANGE_MODE=random      random RANGE_LENGTH-byte ranges at any byte offset of the object
--   RANGE_MODE=sequential  consecutive RANGE_LENGTH-byte ranges; thread i of n starts at i/n of
--                          the object and wraps around at its end
-- RANGE_OBJECT_SIZE is the object's length in bytes.
local size = tonumber(os.getenv("RANGE_OBJECT_SIZE"))
local length = tonumber(os.getenv("RANGE_LENGTH"))
local mode = os.getenv("RANGE_MODE") or "random"

local threads, counter = {}, 0
function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
   for _, t in ipairs(threads) do t:set("count", counter) end
end

local chunks, next_chunk
function init(args)
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
   chunks = math.floor(size / length)
   next_chunk = math.floor(chunks * (id or 0) / (count or 1))
end

local function range_header(first)
   return wrk.format(nil, nil, {["Range"] = string.format("bytes=%d-%d", first, first + length - 1)})
end

function request()
   if mode == "random" then
      return range_header(math.random(0, size - length))
   end
   if next_chunk >= chunks then next_chunk = 0 end
   local chunk = next_chunk
   next_chunk = chunk + 1
   return range_header(chunk * length)
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
