"""Lua scripts: each keeps one invariant atomic in one round trip, on keys of one hash slot."""

from __future__ import annotations

import hashlib

# KEYS: peer hash, inbox stream. ARGV: message id, payload, expires_at (ms).
# Assigns the next per-peer sequence number and appends with stream id "<seq>-0", so that
# XRANGE by sequence is a range by id. Returns the seq, or -1 when the peer no longer exists.
ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = redis.call('HINCRBY', KEYS[1], 'next_seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'm', ARGV[1], 'p', ARGV[2], 'x', ARGV[3])
return seq
"""

# KEYS: trace list. ARGV: ttl seconds (0 = append only if the trace exists), stage JSON...
# Returns the trace length, or 0 when an append found no trace (past retention).
TRACE = """
local ttl = tonumber(ARGV[1])
if ttl == 0 and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return n
"""

# KEYS: inbox. ARGV: seq. Removes entries up to and including seq; returns their message ids.
CONFIRM_UPTO = """
local entries = redis.call('XRANGE', KEYS[1], '-', ARGV[1] .. '-0')
local ids = {}
for i, e in ipairs(entries) do
  redis.call('XDEL', KEYS[1], e[1])
  local f = e[2]
  for j = 1, #f, 2 do if f[j] == 'm' then ids[#ids + 1] = f[j + 1] end end
end
return ids
"""

# KEYS: inbox. ARGV: now (ms), max count. Removes expired entries from the head (the oldest,
# since all share one time-to-live); returns their message ids.
EXPIRE_HEAD = """
local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[2])
local ids = {}
local now = tonumber(ARGV[1])
for i, e in ipairs(entries) do
  local f = e[2]
  local m, x
  for j = 1, #f, 2 do
    if f[j] == 'm' then m = f[j + 1] elseif f[j] == 'x' then x = tonumber(f[j + 1]) end
  end
  if x == nil or x > now then break end
  redis.call('XDEL', KEYS[1], e[1])
  ids[#ids + 1] = m
end
return ids
"""

ALL = {"ENQUEUE": ENQUEUE, "TRACE": TRACE, "CONFIRM_UPTO": CONFIRM_UPTO, "EXPIRE_HEAD": EXPIRE_HEAD}
SHA = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in ALL.items()}
