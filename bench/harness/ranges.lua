-- bench/ranges' wrk script: Range requests over one object, then the common reporter.
--   RANGE_MODE=random      random RANGE_LENGTH-byte ranges at any byte offset of the object
--   RANGE_MODE=sequential  consecutive RANGE_LENGTH-byte ranges; thread i of n starts at i/n of
--                          the object and wraps around at its end
--   RANGE_ONE_PASS=1       (sequential) each thread reads its share once, then stops: with one
--                          thread and one connection, a client reading the object once in order
-- RANGE_OBJECT_SIZE is the object's length in bytes.
local size = tonumber(os.getenv("RANGE_OBJECT_SIZE"))
local length = tonumber(os.getenv("RANGE_LENGTH"))
local mode = os.getenv("RANGE_MODE") or "random"
local one_pass = os.getenv("RANGE_ONE_PASS") == "1"

local threads, counter = {}, 0
function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
   for _, t in ipairs(threads) do t:set("count", counter) end
end

local chunks, next_chunk, last_chunk, answered, share
function init(args)
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
   chunks = math.floor(size / length)
   local n = count or 1
   next_chunk = math.floor(chunks * (id or 0) / n)
   last_chunk = math.floor(chunks * ((id or 0) + 1) / n) - 1
   share = last_chunk - next_chunk + 1
   answered = 0
end

local function range_header(first)
   return wrk.format(nil, nil, {["Range"] = string.format("bytes=%d-%d", first, first + length - 1)})
end

function request()
   if mode == "random" then
      return range_header(math.random(0, size - length))
   end
   local chunk = next_chunk
   if one_pass then
      if chunk > last_chunk then chunk = last_chunk end
   elseif chunk >= chunks then
      chunk = 0
   end
   next_chunk = chunk + 1
   return range_header(chunk * length)
end

function response(status, headers, body)
   if one_pass then
      answered = answered + 1
      if answered >= share then wrk.thread:stop() end
   end
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
