"""The Lua scripts of the Redis Streams run queue (:mod:`._streams`, whose documentation says
what each step does). Each runs atomically in Redis; keys and arguments are positional, as
noted at the top of each script. Entries are ``{"run": <run_id>}``; a stream's key ends with
``<priority digit>:<tenant>``, which the pick script parses from where the tenant starts."""

from __future__ import annotations

from typing import Final

__all__ = ["ACK", "DEPTH", "PRUNE", "PUT", "RECLAIM", "TAKE"]

PUT: Final[str] = """
-- KEYS: active, index, stream. ARGV: group, run id, priority.
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return false end
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[3], ARGV[1], '0', 'MKSTREAM')
local id = redis.call('XADD', KEYS[3], '*', 'run', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], KEYS[3] .. ' ' .. id)
redis.call('ZADD', KEYS[1], ARGV[3], KEYS[3])
return id
"""

ACK: Final[str] = """
-- KEYS: active, index, stream. ARGV: group, entry id, run id.
local acked = redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
if redis.call('HGET', KEYS[2], ARGV[3]) == KEYS[3] .. ' ' .. ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[3])
end
if redis.call('XLEN', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[1], KEYS[3])
end
return acked
"""

TAKE: Final[str] = """
-- KEYS: active. ARGV: group, consumer, wanted, where the tenant starts in a stream's key.
-- Returns {stream, entry id, run id} triples, in the order the runs were picked.
local group, consumer, wanted, at = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local tenants, order = {}, {}
local streams = redis.call('ZREVRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #streams, 2 do
  local key, priority = streams[i], tonumber(streams[i + 1])
  local name = string.sub(key, at + 1)
  local tenant = tenants[name]
  if tenant == nil then
    tenant = {running = 0, streams = {}}
    tenants[name] = tenant
    table.insert(order, name)
  end
  -- The summary of the entries in progress: their count, and the newest of them. Entries are
  -- delivered in order and deleted once acknowledged, so the first entry after the newest
  -- pending one (or the first entry, with none pending) is the next one to deliver.
  local ok, pending = pcall(redis.call, 'XPENDING', key, group)
  if ok then
    tenant.running = tenant.running + pending[1]
    local after = pending[1] > 0 and ('(' .. pending[3]) or '-'
    table.insert(tenant.streams, {key = key, priority = priority, after = after})
  end
end

local function next_entry(stream)
  local entries = redis.call('XRANGE', stream.key, stream.after, '+', 'COUNT', 1)
  if #entries > 0 then return entries[1][1] end
  return nil
end

local function candidate(tenant)
  for _, stream in ipairs(tenant.streams) do  -- highest priority first
    local id = next_entry(stream)
    if id then
      local ms, seq = string.match(id, '^(%d+)-(%d+)$')
      return {key = stream.key, priority = stream.priority, ms = tonumber(ms), seq = tonumber(seq),
        stream = stream}
    end
  end
  return false
end

local function before(a, b)  -- a is served before b: fewest in progress, priority, oldest
  if a.running ~= b.running then return a.running < b.running end
  if a.next.priority ~= b.next.priority then return a.next.priority > b.next.priority end
  if a.next.ms ~= b.next.ms then return a.next.ms < b.next.ms end
  return a.next.seq < b.next.seq
end

local taken, picked = {}, 0
while picked < wanted do
  local best = nil
  for _, name in ipairs(order) do
    local tenant = tenants[name]
    if tenant.next == nil then tenant.next = candidate(tenant) end
    if tenant.next and (best == nil or before(tenant, best)) then best = tenant end
  end
  if best == nil then break end
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1,
    'STREAMS', best.next.key, '>')
  if read and read[1] and read[1][2][1] then
    local entry = read[1][2][1]
    best.next.stream.after = '(' .. entry[1]
    table.insert(taken, best.next.key)
    table.insert(taken, entry[1])
    table.insert(taken, entry[2][2])
    best.running = best.running + 1
    picked = picked + 1
  end
  best.next = nil
end
return taken
"""

RECLAIM: Final[str] = """
-- KEYS: active. ARGV: group, consumer, min idle ms, wanted.
-- Returns {stream, entry id, run id} triples of entries idle for at least min idle ms.
local wanted = tonumber(ARGV[4])
local taken = {}
for _, key in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local cursor, rounds = '0-0', 0
  repeat
    local need = wanted - math.floor(#taken / 3)
    if need <= 0 then return taken end
    local ok, result = pcall(redis.call, 'XAUTOCLAIM', key, ARGV[1], ARGV[2], ARGV[3], cursor,
      'COUNT', need)
    if not ok then break end
    for _, entry in ipairs(result[2]) do
      if entry[2] then
        table.insert(taken, key)
        table.insert(taken, entry[1])
        table.insert(taken, entry[2][2])
      end
    end
    cursor, rounds = result[1], rounds + 1
  until cursor == '0-0' or rounds >= 10
end
return taken
"""


DEPTH: Final[str] = """
-- KEYS: active. ARGV: group. Entries not yet delivered (acknowledged ones are deleted).
local waiting = 0
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local ok, pending = pcall(redis.call, 'XPENDING', key, ARGV[1])
  waiting = waiting + redis.call('XLEN', key) - (ok and pending[1] or 0)
end
return waiting
"""

PRUNE: Final[str] = """
-- KEYS: active. ARGV: group, idle ms. Deletes the consumers (replicas, by worker id) that hold
-- no entry and were idle that long: every replica start adds one, and a stream busy for months
-- would keep them all. A live replica deleted while idle is added again at its next read.
local pruned = 0
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', key, ARGV[1])
  if ok then
    for _, fields in ipairs(consumers) do
      local info = {}
      for j = 1, #fields, 2 do info[fields[j]] = fields[j + 1] end
      if info['pending'] == 0 and info['idle'] >= tonumber(ARGV[2]) then
        redis.call('XGROUP', 'DELCONSUMER', key, ARGV[1], info['name'])
        pruned = pruned + 1
      end
    end
  end
end
return pruned
"""
