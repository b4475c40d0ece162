"""The Lua scripts of the Redis engine (see ``creative_hub.log.redis`` for the key layout).

Each script runs atomically in Redis, so a batch append, a group's creation
on every partition, a rebalance or a retention pass is all-or-nothing with
respect to other clients, in one round trip.  Keys are built inside the
scripts from the topic's base key (``hub:<topic>``): fine on a standalone
Redis, not on Redis Cluster (which would need every key in KEYS and hash
tags; see the engine's docstring).

Times come from the server (``TIME``), so clients with skewed clocks agree
on lease expiry and on the stream ids, which double as append times.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = [
    "ACK",
    "ALL",
    "APPEND",
    "CLAIM",
    "DELETE",
    "INFO",
    "JOIN",
    "LAG",
    "LEAVE",
    "REBALANCE",
    "RETAIN",
    "RETENTION",
    "Script",
]


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1, for EVALSHA (with SCRIPT LOAD after a NOSCRIPT)."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# Shared helpers, prepended to the scripts that need them.
_PRELUDE = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse_id(s)
  local a, b = string.match(s, '^(%d+)-(%d+)$')
  return tonumber(a), tonumber(b)
end
local function id_less(x, y)
  local xa, xb = parse_id(x)
  local ya, yb = parse_id(y)
  return xa < ya or (xa == ya and xb < yb)
end
local function stream_key(base, p)
  if p == 0 then return base end
  return base .. ':' .. p
end
-- The topic's partition count, fixed when the topic is first used.
local function partitions(base, registry, topic, default)
  local meta = base .. ':meta'
  local parts = tonumber(redis.call('HGET', meta, 'partitions'))
  if not parts then
    parts = tonumber(default)
    redis.call('HSET', meta, 'partitions', parts)
    redis.call('SADD', registry, topic)
  end
  return parts
end
"""

# ARGV: base, registry, topic, default partitions, token, then 6 per entry:
#   id, digest, crc32(key), key, creator, body
# Returns {0, pos1, dup1, pos2, dup2, ...} or {1, conflicting id}.
# Pass 1 checks every id before pass 2 writes anything, so an IdConflict
# leaves the topic untouched.  ``token`` identifies one append call: a retry
# of a call whose reply was lost finds its own token and reports the entry
# as stored (duplicate=0), not as someone else's duplicate.
APPEND = Script(
    "append",
    "#!lua\n"
    + _PRELUDE
    + r"""
local base, token = ARGV[1], ARGV[5]
local parts = partitions(base, ARGV[2], ARGV[3], ARGV[4])
local meta, ids = base .. ':meta', base .. ':ids'
local n = (#ARGV - 5) / 6
local out, fresh, seen = {}, {}, {}
for i = 1, n do
  local o = 5 + (i - 1) * 6
  local id, digest = ARGV[o + 1], ARGV[o + 2]
  local first = seen[id]
  if first then
    if ARGV[5 + (first - 1) * 6 + 2] ~= digest then return {1, id} end
    out[i] = first
  else
    seen[id] = i
    local stored = redis.call('HGET', ids, id)
    if stored then
      local pos, tok, dig = string.match(stored, '^(%S+) (%S*) (.*)$')
      if dig ~= digest then return {1, id} end
      if tok == token then out[i] = {pos, 0} else out[i] = {pos, 1} end
    else
      fresh[#fresh + 1] = i
    end
  end
end
if #fresh > 0 then
  local ms, seq = 0, 0
  local last = redis.call('HGET', meta, 'last')
  if last then ms, seq = parse_id(last) end
  local now = now_ms()
  for _, i in ipairs(fresh) do
    local o = 5 + (i - 1) * 6
    -- Ids are the server's ms clock and a sequence, increasing over the
    -- whole topic, so merging the partitions by id gives the append order.
    if now > ms then ms, seq = now, 0 else seq = seq + 1 end
    local stream = stream_key(base, tonumber(ARGV[o + 3]) % parts)
    local sid = string.format('%d-%d', ms, seq)
    local ok = redis.pcall('XADD', stream, sid, 'id', ARGV[o + 1], 'key', ARGV[o + 4],
      'digest', ARGV[o + 2], 'creator', ARGV[o + 5], 'event', ARGV[o + 6])
    if type(ok) == 'table' and ok.err then
      -- An entry added by hand (XADD *) is ahead of the topic's clock: go past it.
      local info = redis.call('XINFO', 'STREAM', stream)
      for k = 1, #info, 2 do
        if info[k] == 'last-generated-id' then ms, seq = parse_id(info[k + 1]) end
      end
      seq = seq + 1
      sid = string.format('%d-%d', ms, seq)
      redis.call('XADD', stream, sid, 'id', ARGV[o + 1], 'key', ARGV[o + 4],
        'digest', ARGV[o + 2], 'creator', ARGV[o + 5], 'event', ARGV[o + 6])
    end
    redis.call('HSET', ids, ARGV[o + 1], sid .. ' ' .. token .. ' ' .. ARGV[o + 2])
    out[i] = {sid, 0}
  end
  redis.call('HSET', meta, 'last', string.format('%d-%d', ms, seq))
end
local flat = {0}
for i = 1, n do
  local r = out[i]
  if type(r) == 'number' then
    flat[#flat + 1] = out[r][1]
    flat[#flat + 1] = 1
  else
    flat[#flat + 1] = r[1]
    flat[#flat + 1] = r[2]
  end
end
return flat
""",
)

# ARGV: base, registry, topic, default partitions, group, start id ('0' or '$')
# Creates the group on every partition stream at one instant, so '$' is one
# consistent cut of the topic.  Returns the partition count.
JOIN = Script(
    "join",
    _PRELUDE
    + r"""
local base, group = ARGV[1], ARGV[5]
local parts = partitions(base, ARGV[2], ARGV[3], ARGV[4])
for p = 0, parts - 1 do
  local r = redis.pcall('XGROUP', 'CREATE', stream_key(base, p), group, ARGV[6], 'MKSTREAM')
  if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP') then
    return redis.error_reply(r.err)
  end
end
redis.call('SADD', base .. ':groups', group)
return parts
""",
)

# ARGV: group key, consumer, ttl ms, partitions, then the partitions this
# member cannot hand over yet (it holds deliveries of them).
# Members are fields 'm:<consumer>' = expiry; leases 'p:<n>' = '<consumer>|<expiry>'.
# Each live member wants the partitions p with p % members == its rank;
# it keeps (renews) what it owns and wants or cannot release yet, releases
# the rest, and takes what it wants once free or expired.
# Returns {owned, newly acquired, wanted, gap notices of owned partitions}.
REBALANCE = Script(
    "rebalance",
    _PRELUDE
    + r"""
local gkey, me, ttl, parts = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local busy = {}
for i = 5, #ARGV do busy[tonumber(ARGV[i])] = true end
local now = now_ms()
redis.call('HSET', gkey, 'm:' .. me, string.format('%d', now + ttl))
local flat = redis.call('HGETALL', gkey)
local members, leases = {}, {}
for i = 1, #flat, 2 do
  local f, v = flat[i], flat[i + 1]
  local kind = string.sub(f, 1, 2)
  if kind == 'm:' then
    if tonumber(v) > now then members[#members + 1] = string.sub(f, 3)
    else redis.call('HDEL', gkey, f) end
  elseif kind == 'p:' then
    local owner, exp = string.match(v, '^(.*)|(%d+)$')
    leases[tonumber(string.sub(f, 3))] = {owner, tonumber(exp)}
  end
end
table.sort(members)
local rank = 0
for i, m in ipairs(members) do if m == me then rank = i - 1 end end
local lease = me .. '|' .. string.format('%d', now + ttl)
local owned, acquired, wanted = {}, {}, {}
for p = 0, parts - 1 do
  local want = (p % #members) == rank
  if want then wanted[#wanted + 1] = p end
  local l = leases[p]
  if l and l[1] == me and l[2] > now then
    if want or busy[p] then
      redis.call('HSET', gkey, 'p:' .. p, lease)
      owned[#owned + 1] = p
    else
      redis.call('HDEL', gkey, 'p:' .. p)
    end
  elseif want and (not l or l[2] <= now) then
    redis.call('HSET', gkey, 'p:' .. p, lease)
    owned[#owned + 1] = p
    acquired[#acquired + 1] = p
  end
end
-- Gap notices of partitions this member now owns are handed to it (once).
local gl, notes = gkey .. ':gaps', {}
if redis.call('EXISTS', gl) == 1 then
  local own, keep = {}, {}
  for _, p in ipairs(owned) do own[p] = true end
  for _, n in ipairs(redis.call('LRANGE', gl, 0, -1)) do
    if own[tonumber(string.match(n, '^(%d+)'))] then notes[#notes + 1] = n else keep[#keep + 1] = n end
  end
  redis.call('DEL', gl)
  if #keep > 0 then redis.call('RPUSH', gl, unpack(keep)) end
end
return {owned, acquired, wanted, notes}
""",
)

# ARGV: group key, consumer, group, then every partition stream.
# Leaves the group: drops the membership and leases at once, so others take
# the partitions now, not after the ack timeout.  Un-acked entries stay in the
# PEL under this consumer's name for the next owner to claim; the consumer is
# deleted only when it has none (DELCONSUMER would drop them).
LEAVE = Script(
    "leave",
    r"""
local gkey, me, group = ARGV[1], ARGV[2], ARGV[3]
redis.call('HDEL', gkey, 'm:' .. me)
local flat = redis.call('HGETALL', gkey)
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 2) == 'p:' and string.match(flat[i + 1], '^(.*)|%d+$') == me then
    redis.call('HDEL', gkey, flat[i])
  end
end
for i = 4, #ARGV do
  local ok, pend = pcall(redis.call, 'XPENDING', ARGV[i], group, '-', '+', 1, me)
  if ok and #pend == 0 then redis.pcall('XGROUP', 'DELCONSUMER', ARGV[i], group, me) end
end
return 1
""",
)

# ARGV: group, consumer, min idle ms, count, then the partition streams.
# XAUTOCLAIM what has been pending longer than ``min idle`` (0 when taking over
# a partition), with each entry's delivery count (XAUTOCLAIM does not return
# it); ``count`` 0 means all of it (a new owner must have every left-over
# entry before it reads new ones, or one key's order would break).
# Returns, per stream, {list of {id, fields, delivery count}, ids retention
# removed while pending (XAUTOCLAIM drops them from the PEL and names them)}.
CLAIM = Script(
    "claim",
    r"""
local group, me, idle, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local step, max_rounds = count, 10
if count == 0 then step, max_rounds = 1000, 1000 end
local out = {}
for i = 5, #ARGV do
  local stream = ARGV[i]
  local cursor, got, gone, rounds = '0-0', {}, {}, 0
  repeat
    local r = redis.call('XAUTOCLAIM', stream, group, me, idle, cursor, 'COUNT', step)
    cursor, rounds = r[1], rounds + 1
    for _, id in ipairs(r[3] or {}) do gone[#gone + 1] = id end
    for _, e in ipairs(r[2]) do
      if type(e) == 'table' then
        local pend = redis.call('XPENDING', stream, group, e[1], e[1], 1)
        local n = 1
        if pend[1] then n = pend[1][4] end
        got[#got + 1] = {e[1], e[2], n}
      end
    end
  until cursor == '0-0' or (count > 0 and #got >= count) or rounds >= max_rounds
  out[#out + 1] = {got, gone}
end
return out
""",
)

# ARGV: base, chunk.  One pass of retention: removes at most ``chunk`` of the
# oldest entries across the partitions (what max_age, max_count and max_bytes
# no longer keep), forgets their ids, and raises the 'removed' watermark
# (the newest removed id) that reads check for PositionGone.
# Returns {removed, 1 if there may be more to remove}.
RETAIN = Script(
    "retain",
    _PRELUDE
    + r"""
local base, chunk = ARGV[1], tonumber(ARGV[2])
local meta, ids = base .. ':meta', base .. ':ids'
local parts = tonumber(redis.call('HGET', meta, 'partitions'))
if not parts then return {0, 0} end
local max_age = tonumber(redis.call('HGET', meta, 'max_age'))
local max_count = tonumber(redis.call('HGET', meta, 'max_count'))
local max_bytes = tonumber(redis.call('HGET', meta, 'max_bytes'))
local total, bytes = 0, 0
for p = 0, parts - 1 do
  local s = stream_key(base, p)
  total = total + redis.call('XLEN', s)
  if max_bytes then bytes = bytes + (redis.call('MEMORY', 'USAGE', s) or 0) end
end
local excess = 0
if max_count and total > max_count then excess = total - max_count end
if max_bytes and bytes > max_bytes and total > 0 then
  -- About: the share of entries to drop is the share of bytes over the limit.
  excess = math.max(excess, math.ceil(total * (1 - max_bytes / bytes)))
end
local cutoff = nil
if max_age then cutoff = now_ms() - math.floor(max_age * 1000) end
if excess == 0 and not cutoff then return {0, 0} end
-- Merge the oldest entries of every partition, oldest first.
local heads = {}
for p = 0, parts - 1 do
  heads[p] = {list = redis.call('XRANGE', stream_key(base, p), '-', '+', 'COUNT', chunk), at = 1}
end
local removed, newest = 0, nil
local last_of = {}
while removed < chunk do
  local best, best_id = nil, nil
  for p = 0, parts - 1 do
    local e = heads[p].list[heads[p].at]
    if e and (not best_id or id_less(e[1], best_id)) then best, best_id = p, e[1] end
  end
  if not best then break end
  local ms = parse_id(best_id)
  if not (removed < excess or (cutoff and ms < cutoff)) then break end
  local e = heads[best].list[heads[best].at]
  heads[best].at = heads[best].at + 1
  for k = 1, #e[2], 2 do
    if e[2][k] == 'id' then redis.call('HDEL', ids, e[2][k + 1]) end
  end
  last_of[best] = best_id
  newest = best_id
  removed = removed + 1
end
-- Gaps: per group, the entries removed here that it was never delivered
-- (after its last-delivered-id) are counted and left as a notice
-- '<partition> <last-delivered-id> <newest removed id> <count>' for the
-- partition's owner (REBALANCE hands it over).  Delivered, un-acked ones are
-- still with a live member; a dead member's are counted by CLAIM.
local groups = redis.call('SMEMBERS', base .. ':groups')
for p, id in pairs(last_of) do
  local s = stream_key(base, p)
  if #groups > 0 then
    local ok, infos = pcall(redis.call, 'XINFO', 'GROUPS', s)
    if ok then
      for _, g in ipairs(infos) do
        local info = {}
        for k = 1, #g, 2 do info[g[k]] = g[k + 1] end
        local ldid, n = info['last-delivered-id'], 0
        for k = 1, heads[p].at - 1 do
          if id_less(ldid, heads[p].list[k][1]) then n = n + 1 end
        end
        if n > 0 then
          local gkey = base .. ':group:' .. info['name']
          redis.call('HINCRBY', gkey, 'skipped', n)
          redis.call('HINCRBY', gkey, 'gaps', 1)
          redis.call('RPUSH', gkey .. ':gaps', string.format('%d %s %s %d', p, ldid, id, n))
        end
      end
    end
  end
  local ms, seq = parse_id(id)
  redis.call('XTRIM', s, 'MINID', string.format('%d-%d', ms, seq + 1))
end
if newest then
  local old = redis.call('HGET', meta, 'removed')
  if not old or id_less(old, newest) then redis.call('HSET', meta, 'removed', newest) end
end
if removed >= chunk then return {removed, 1} end
return {removed, 0}
""",
)

# ARGV: base.  Returns nil when the topic does not exist, else
# {count, first id, last id, bytes, max_age, max_count, max_bytes} ('' = none).
INFO = Script(
    "info",
    _PRELUDE
    + r"""
local base = ARGV[1]
local meta = base .. ':meta'
local parts = tonumber(redis.call('HGET', meta, 'partitions'))
if not parts then return nil end
local count, bytes, first, last = 0, 0, '', ''
for p = 0, parts - 1 do
  local s = stream_key(base, p)
  count = count + redis.call('XLEN', s)
  bytes = bytes + (redis.call('MEMORY', 'USAGE', s) or 0)
  local f = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)[1]
  if f and (first == '' or id_less(f[1], first)) then first = f[1] end
  local l = redis.call('XREVRANGE', s, '+', '-', 'COUNT', 1)[1]
  if l and (last == '' or id_less(last, l[1])) then last = l[1] end
end
local r = redis.call('HMGET', meta, 'max_age', 'max_count', 'max_bytes')
return {count, first, last, bytes, r[1] or '', r[2] or '', r[3] or ''}
""",
)

# ARGV: base, group key, group.  Returns {found, not acked, pending, live members, skipped, gaps}.
# XINFO GROUPS gives 'lag' (not yet delivered) on Redis >= 7.0; where Redis
# cannot tell (after XDEL) or is wrong (after retention trimmed entries the
# group never read), the entries after last-delivered-id are counted.
LAG = Script(
    "lag",
    _PRELUDE
    + r"""
local base, gkey, group = ARGV[1], ARGV[2], ARGV[3]
local parts = tonumber(redis.call('HGET', base .. ':meta', 'partitions'))
if not parts then return {0, 0, 0, 0} end
local found, lag, pending = 0, 0, 0
-- After retention removed entries the group never read, Redis' own lag
-- (entries added - entries read) counts them forever: count instead.
local trimmed = redis.call('HEXISTS', base .. ':meta', 'removed') == 1
for p = 0, parts - 1 do
  local s = stream_key(base, p)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', s)
  if ok then
    for _, g in ipairs(groups) do
      local info = {}
      for k = 1, #g, 2 do info[g[k]] = g[k + 1] end
      if info['name'] == group then
        found = 1
        pending = pending + info['pending']
        local l = info['lag']
        if trimmed then l = nil end
        if not l then
          l = 0
          local start = '(' .. info['last-delivered-id']
          repeat
            local r = redis.call('XRANGE', s, start, '+', 'COUNT', 1000)
            l = l + #r
            if #r > 0 then start = '(' .. r[#r][1] end
          until #r < 1000
        end
        lag = lag + l
      end
    end
  end
end
local now, members = now_ms(), 0
local flat = redis.call('HGETALL', gkey)
local skipped, gaps = 0, 0
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 2) == 'm:' and tonumber(flat[i + 1]) > now then members = members + 1 end
  if flat[i] == 'skipped' then skipped = tonumber(flat[i + 1]) end
  if flat[i] == 'gaps' then gaps = tonumber(flat[i + 1]) end
end
return {found, lag + pending, pending, members, skipped, gaps}
""",
)

# ARGV: base, registry, topic, default partitions, max_age, max_count, max_bytes ('' = none)
RETENTION = Script(
    "set_retention",
    _PRELUDE
    + r"""
local base = ARGV[1]
partitions(base, ARGV[2], ARGV[3], ARGV[4])
local meta = base .. ':meta'
local names = {'max_age', 'max_count', 'max_bytes'}
for i, name in ipairs(names) do
  local v = ARGV[4 + i]
  if v == '' then redis.call('HDEL', meta, name) else redis.call('HSET', meta, name, v) end
end
return 1
""",
)

# ARGV: base, then event ids.  Removes single records (compaction) from
# whichever partition holds them (XDEL), and forgets their ids.  Returns how
# many went.
DELETE = Script(
    "delete",
    _PRELUDE
    + r"""
local base = ARGV[1]
local ids = base .. ':ids'
local parts = tonumber(redis.call('HGET', base .. ':meta', 'partitions'))
if not parts then return 0 end
local removed = 0
for i = 2, #ARGV do
  local stored = redis.call('HGET', ids, ARGV[i])
  if stored then
    local pos = string.match(stored, '^(%S+)')
    for p = 0, parts - 1 do
      local n = redis.call('XDEL', stream_key(base, p), pos)
      if n > 0 then removed = removed + n; break end
    end
    redis.call('HDEL', ids, ARGV[i])
  end
end
return removed
""",
)

# ARGV: group, then pairs of (stream, stream ids joined by spaces).  XACKs them
# all; returns how many were pending.  The same as XACK per stream, but the
# client sends one string per stream instead of one argument per id, which
# is most of a consumer's client-side cost of acking a big batch.
ACK = Script(
    "ack",
    r"""
local group = ARGV[1]
local n = 0
for i = 2, #ARGV - 1, 2 do
  local ids = {}
  for id in string.gmatch(ARGV[i + 1], '%S+') do
    ids[#ids + 1] = id
    if #ids == 4000 then  -- well under Lua's unpack limit
      n = n + redis.call('XACK', ARGV[i], group, unpack(ids))
      ids = {}
    end
  end
  if #ids > 0 then n = n + redis.call('XACK', ARGV[i], group, unpack(ids)) end
end
return n
""",
)

ALL = [APPEND, JOIN, REBALANCE, LEAVE, CLAIM, RETAIN, INFO, LAG, RETENTION, DELETE, ACK]
