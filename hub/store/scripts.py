"""Lua scripts: each keeps one invariant atomic in one round trip, on keys of one hash slot."""

from __future__ import annotations

import hashlib


# A delivery was queued for a peer: when the peer hash says it is live on another node, its id
# is published on that node's wake channel, so the node that holds its connection reads the
# inbox now. The script reads the record the write sees and names the channel from it: a peer
# that connects after the write is read by its new node's replay, one before it is woken.
def _wake(hash_key: str, me: str) -> str:
    """Lua setting `wake` to the wake channel of the node holding the peer's connection when
    that is another node (false otherwise)."""
    return (f"local wake = false if {me} ~= '' then local live = redis.call('HMGET', {hash_key}, 'status', 'node') "
            f"if live[1] and live[1] ~= 'offline' and live[2] and live[2] ~= '' and live[2] ~= {me} then "
            f"wake = 'rw:wake:' .. live[2] end end")


def _publish_then(channel: str, message: str, reply: str, unheard: str, *, cluster: bool) -> str:
    """Lua ending a script: publish `message` on `channel` (a Lua expression; false: nothing to
    publish) and return `reply`, or `unheard` when nobody listened on the channel.

    A cluster lets a script touch its own slot only, and a channel hashes to a slot of its own;
    so the cluster variant publishes nothing and returns {'publish', channel, message, reply,
    unheard}: the cluster writer sends the SPUBLISH and answers the caller as the plain variant
    would have (hub.store.cluster_writer)."""
    if cluster:
        return f"if {channel} then return {{'publish', {channel}, {message}, {reply}, {unheard}}} end return {reply}"
    return f"if {channel} and redis.call('PUBLISH', {channel}, {message}) == 0 then return {unheard} end return {reply}"


# KEYS: peer hash, inbox stream[, index zset]. ARGV: message id, payload, expires_at (ms),
# trace id, kind, this node's name ('' = the store is not shared), peer id[, index score].
# Assigns the next per-peer sequence number and appends with stream id "<seq>-0", so that
# XRANGE by sequence is a range by id; with a third key (an ask's recipient: its inbound-asks
# index) also indexes the trace id there. When the peer is live on another node, that node is
# woken on its channel (see _wake). Returns the seq; {seq} when the node holding the peer was
# woken and nobody listened (it is gone: the delivery waits in the inbox); -1 when the peer no
# longer exists, -2 when its inbox is full. The wake says "<peer id> <seq> <message id>".
def _enqueue(*, cluster: bool) -> str:
    return f"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[9] ~= '0' and redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[9]) then return -2 end
local seq = redis.call('HINCRBY', KEYS[1], 'next_seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'm', ARGV[1], 'p', ARGV[2], 'x', ARGV[3], 't', ARGV[4], 'k', ARGV[5])
if KEYS[3] then redis.call('ZADD', KEYS[3], ARGV[8], ARGV[4]) end
{_wake("KEYS[1]", "ARGV[6]")}
{_publish_then("wake", "ARGV[7] .. ' ' .. seq .. ' ' .. ARGV[1]", "seq", "{seq}", cluster=cluster)}
"""


# KEYS: ask hash, asker's peer hash, asker's inbox, asker's outbound index, asker's deadlines,
# asker's closings (one slot: all tagged with the asker's id).
# ARGV: new state, closed_at, result JSON, closer id ('*' = the hub itself: a deadline),
#       notice message id, notice payload ('' = none), notice expires_at, trace id, notice kind,
#       this node's name ('' = the store is not shared), the asker's id, the closing process
#       (node/instance): the close is noted in the closings index until its final trace stage is
#       written (the trace lives in another slot), so a crash in between is mended at start.
# Closes a pending ask once and, in the same step, queues the notice (reply, answer, expiry)
# for the asker, so that a close and its notice never part. Returns {'ok', seq} (seq 0 when
# nothing was queued: no payload, or the asker has no inbox), or {'missing'}, {'forbidden'},
# or {current state}.
def _close_ask(*, cluster: bool) -> str:
    return f"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {{'missing'}} end
if ARGV[4] ~= '*' and redis.call('HGET', KEYS[1], 'recipient') ~= ARGV[4] then return {{'forbidden'}} end
if state ~= 'pending' then return {{state}} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'closed_at', ARGV[2], 'result', ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[8])
redis.call('ZREM', KEYS[5], ARGV[8])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[8] .. '|' .. ARGV[12])
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
  local seq = redis.call('HINCRBY', KEYS[2], 'next_seq', 1)
  redis.call('XADD', KEYS[3], seq .. '-0', 'm', ARGV[5], 'p', ARGV[6], 'x', ARGV[7], 't', ARGV[8], 'k', ARGV[9])
  {_wake("KEYS[2]", "ARGV[10]")}
  {_publish_then("wake", "ARGV[11] .. ' ' .. seq .. ' ' .. ARGV[5]", "{'ok', seq}", "{'ok', seq}", cluster=cluster)}
end
return {{'ok', 0}}
"""

# KEYS: peer hash. ARGV: the node believed to hold the peer, status, status reason, last_seen,
# the node to record, a node-bus message to publish when applied ('' = none).
# Presence is its holder's to write: it is applied only while the record names that node (or
# none), so a node that lost a peer to another node (it reconnected there) cannot mark it
# offline, and a deleted peer is not brought back as a partial record. Returns 1 if applied.
def _set_presence(*, cluster: bool) -> str:
    return f"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local node = redis.call('HGET', KEYS[1], 'node')
if node and node ~= '' and node ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'status_reason', ARGV[3], 'last_seen', ARGV[4], 'node', ARGV[5])
local bus = ARGV[6] ~= '' and 'rw:bus'
{_publish_then("bus", "ARGV[6]", "1", "1", cluster=cluster)}
"""


ENQUEUE = _enqueue(cluster=False)
CLOSE_ASK = _close_ask(cluster=False)
SET_PRESENCE = _set_presence(cluster=False)

# KEYS: ask hash, the asker's outbound index, the asker's deadlines (one slot: the asker's).
# ARGV: expire-at (ms), correlation id, created_at, deadline, then the hash's field/value pairs.
CREATE_ASK = """
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return 1
"""

# KEYS: trace list. ARGV: retention in seconds, stage JSON... Starts (or extends) a trace and
# sets its retention in one step; returns its length. Stages after the first are appended with
# RPUSHX, which adds nothing to a trace past retention.
TRACE = """
local n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
"""

# KEYS: inbox, peer hash. ARGV: seq. Removes entries up to and including seq; returns their
# trace ids. A seq past the last one the store gave the peer means the store lost writes the peer
# saw (a failover without replica acks): the seqs after the store's last one are given again from
# there. Nothing is removed then (every entry left is delivered again: at least once), and the
# next seq given is past the peer's cursor.
CONFIRM_UPTO = """
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[2], 'next_seq') or '0') then
  redis.call('HSET', KEYS[2], 'next_seq', ARGV[1])
  return {}
end
local entries = redis.call('XRANGE', KEYS[1], '-', ARGV[1] .. '-0')
local ids = {}
for i, e in ipairs(entries) do
  redis.call('XDEL', KEYS[1], e[1])
  local f = e[2]
  for j = 1, #f, 2 do if f[j] == 't' then ids[#ids + 1] = f[j + 1] end end
end
return ids
"""

# KEYS: inbox. ARGV: now (ms), max count. Removes expired entries from the oldest on (an
# entry that has not expired ends the sweep: expiry follows arrival order closely enough for a
# periodic sweep). Returns {next, trace id, kind, trace id, kind, ...}: `next` is when the new
# head entry expires (already past when the count ran out before it; 0 when the inbox is
# empty, or its head never expires), then the pairs of what it removed.
EXPIRE_HEAD = """
local count = tonumber(ARGV[2])
local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', count + 1)
local out = {0}
local now = tonumber(ARGV[1])
for i, e in ipairs(entries) do
  local f = e[2]
  local t, k, x
  for j = 1, #f, 2 do
    if f[j] == 't' then t = f[j + 1] elseif f[j] == 'k' then k = f[j + 1]
    elseif f[j] == 'x' then x = tonumber(f[j + 1]) end
  end
  if x == nil or x > now or i > count then
    out[1] = x or 0
    return out
  end
  redis.call('XDEL', KEYS[1], e[1])
  out[#out + 1] = t
  out[#out + 1] = k
end
return out
"""

# KEYS: question hash, its trace (one slot: both tagged with the question id).
# ARGV: expire-at (ms), content hash, trace ttl (s), the `joined` stage JSON, the number n of
# first stages, those n stage JSONs, then the hash's field/value pairs.
# Creates the question with its first trace stages unless it exists; a retried hook asking
# about the same tool call joins it (the `joined` stage is appended). Returns {'created'},
# {'joined', state} or {'mismatch'} when the existing question is about different content.
CREATE_QUESTION = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'content_hash') ~= ARGV[2] then return {'mismatch'} end
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[4]) end
  return {'joined', redis.call('HGET', KEYS[1], 'state')}
end
local n = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'content_hash', ARGV[2], unpack(ARGV, 6 + n))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], unpack(ARGV, 6, 5 + n))
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {'created'}
"""

# KEYS: question hash, its trace. ARGV: content hash expected ('' = not checked), the final
# stage JSON, then the decision's field/value pairs (state — decided or abandoned — first, decision, answered_by, ...
# Decides a pending question once, and traces it in the same step.
# Returns {'ok'}, {'missing'}, {'mismatch'} or {'decided', answered_by}.
DECIDE_QUESTION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'content_hash') ~= ARGV[1] then return {'mismatch'} end
if state ~= 'pending' then return {'decided', redis.call('HGET', KEYS[1], 'answered_by')} end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[2]) end
return {'ok'}
"""

# KEYS: schedule hash, its fire history. ARGV: due (ms), next due ('' = none), mode ('send' or
# 'missed'), claim JSON (send) or history entry JSON (missed), now, node, history length,
# missed count. Claims the occurrence `due` once: only an active schedule whose next due time is
# `due` and that has no claim in flight. `send` leaves the claim in flight until FINISH_FIRE;
# `missed` records the entry at once. Returns {'ok'}, {'missing'}, {'inactive', state},
# {'busy'} or {'moved', next_fire_at}.
CLAIM_FIRE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state ~= 'active' then return {'inactive', state} end
local inflight = redis.call('HGET', KEYS[1], 'inflight')
if inflight and inflight ~= '' then return {'busy'} end
local due = redis.call('HGET', KEYS[1], 'next_fire_at')
if due ~= ARGV[1] then return {'moved', due or ''} end
redis.call('HSET', KEYS[1], 'next_fire_at', ARGV[2])
if ARGV[3] == 'send' then
  redis.call('HSET', KEYS[1], 'inflight', ARGV[4], 'inflight_node', ARGV[6], 'inflight_at', ARGV[5])
  return {'ok'}
end
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[7]), -1)
redis.call('HINCRBY', KEYS[1], 'missed', ARGV[8])
if ARGV[2] == '' then redis.call('HSET', KEYS[1], 'state', 'done') end
return {'ok'}
"""

# KEYS: schedule hash, its fire history. ARGV: the claim JSON, history entry JSON, counter field
# (fired or failed), history length. Records the outcome of the claim in flight, once; a
# schedule with no next due time is then done. Returns 1, or 0 when that claim is not in flight.
FINISH_FIRE = """
if redis.call('HGET', KEYS[1], 'inflight') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'inflight', '', 'inflight_node', '', 'inflight_at', '')
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
if redis.call('HGET', KEYS[1], 'next_fire_at') == '' and redis.call('HGET', KEYS[1], 'state') == 'active' then
  redis.call('HSET', KEYS[1], 'state', 'done')
end
return 1
"""

# KEYS: schedule hash. ARGV: the claim JSON, node, now. A node takes over a claim whose node
# died, once. Returns 1, or 0 when that claim is not in flight any more.
TAKE_OVER_FIRE = """
if redis.call('HGET', KEYS[1], 'inflight') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'inflight_node', ARGV[2], 'inflight_at', ARGV[3])
return 1
"""

# KEYS: schedule hash. ARGV: from state, to state, next due time. Pause and resume.
# Returns {'ok'}, {'missing'} or {current state}.
SET_SCHEDULE_STATE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state ~= ARGV[1] then return {state} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'next_fire_at', ARGV[3])
return {'ok'}
"""

# KEYS: attachments meta hash, used hash, expiry zset, the node's id set.
# ARGV: id, metadata JSON, uploader id, size, uploader's limit, hub limit, expires_at.
# Stores an upload's metadata if the uploader's and the hub's totals stay within their limits.
# Returns 'ok', or 'peer' / 'hub' for the total that would be passed (nothing changed).
COMMIT_ATTACHMENT = """
local size = tonumber(ARGV[4])
local peer = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if peer + size > tonumber(ARGV[5]) then return 'peer' end
local total = tonumber(redis.call('HGET', KEYS[2], '*') or '0')
if total + size > tonumber(ARGV[6]) then return 'hub' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[3], size)
redis.call('HINCRBY', KEYS[2], '*', size)
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return 'ok'
"""

# KEYS: attachments meta hash, used hash, expiry zset, the node's id set, readers set, refs set.
# ARGV: id. Removes the metadata and gives its bytes back to the totals, once. Returns 1, or 0
# when it was already gone (the indexes are cleaned either way).
DELETE_ATTACHMENT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[5], KEYS[6])
if not raw then return 0 end
local meta = cjson.decode(raw)
redis.call('HDEL', KEYS[1], ARGV[1])
for _, who in ipairs({meta['uploader'], '*'}) do
  if redis.call('HINCRBY', KEYS[2], who, -meta['size']) <= 0 then redis.call('HDEL', KEYS[2], who) end
end
return 1
"""

# KEYS: attachments meta hash, readers set, refs set. ARGV: id, count of readers, readers...,
# refs... A message carrying the attachment was accepted: its recipients may download it and
# it is kept while the message is pending. Returns 1, or 0 when the attachment is gone.
GRANT_ATTACHMENT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local n = tonumber(ARGV[2])
for i = 3, 2 + n do redis.call('SADD', KEYS[2], ARGV[i]) end
for i = 3 + n, #ARGV do redis.call('SADD', KEYS[3], ARGV[i]) end
return 1
"""

# KEYS: inbox stream. ARGV: message id, seq to look after, most entries to look at. Looks for a
# delivery of that message in one page of the inbox, so that a long inbox never holds the store
# for long. Returns {1, 0} when found, {0, 0} when the inbox ends, else {0, last seq looked at}.
INBOX_HOLDS = """
local rows = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2] .. '-0', '+', 'COUNT', ARGV[3])
for _, entry in ipairs(rows) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'm' and fields[i + 1] == ARGV[1] then return {1, 0} end
  end
end
if #rows < tonumber(ARGV[3]) then return {0, 0} end
return {0, tonumber(string.match(rows[#rows][1], '^(%d+)'))}
"""

# ---- jobs. A work item's hash has `state` (queued, running, then one final state), and while
# running the `node`, `instance` and `attempt` of the run; only that run may finish it.

# KEYS: work hash, its trace. ARGV: node, instance, now, stage JSON, trace length. Starts a
# queued work item, once. Returns the attempt number, or 0 when it is not queued.
JOB_CLAIM = """
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'node', ARGV[1], 'instance', ARGV[2], 'started_at', ARGV[3],
           'updated_at', ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
return attempt
"""

# KEYS: work hash, its trace. ARGV: node, instance, attempt, final state, reason, now, stage
# JSON, trace length, then field/value pairs to set (result, session id). Ends the run that
# `node/instance/attempt` names, once. Returns 1, or 0 when that run is not the one running.
JOB_FINISH = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'node') ~= ARGV[1]
   or redis.call('HGET', KEYS[1], 'instance') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'reason', ARGV[5], 'finished_at', ARGV[6], 'updated_at', ARGV[6])
if #ARGV > 8 then redis.call('HSET', KEYS[1], unpack(ARGV, 9)) end
redis.call('RPUSH', KEYS[2], ARGV[7])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
return 1
"""

# KEYS: job hash, its trace. ARGV: now, stage JSON, trace length. Cancels a work item that is
# queued or running, or a recurring job that is active. Returns {'ok', state before, node,
# instance}, {'over', state} or {'missing'}.
JOB_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state ~= 'queued' and state ~= 'running' and state ~= 'active' then return {'over', state} end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', 'cancelled', 'finished_at', ARGV[1], 'updated_at', ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
return {'ok', state, redis.call('HGET', KEYS[1], 'node') or '', redis.call('HGET', KEYS[1], 'instance') or ''}
"""

# KEYS: recurring job hash, its fire history, the new work hash, its trace. ARGV: due, next due
# ('' = none), work id, work body JSON, now, fire entry JSON, stage JSON, history length.
# Fires the occurrence `due` once: makes its work item, queued, and moves the recurring job on.
# Returns {'ok', fire number}, {'inactive', state}, {'moved', next due} or {'missing'}.
JOB_FIRE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state ~= 'active' then return {'inactive', state} end
local due = redis.call('HGET', KEYS[1], 'next_fire_at')
if due ~= ARGV[1] then return {'moved', due or ''} end
local n = redis.call('HINCRBY', KEYS[1], 'fires', 1)
redis.call('HSET', KEYS[1], 'next_fire_at', ARGV[2], 'last_work', ARGV[3], 'updated_at', ARGV[5])
if ARGV[2] == '' then redis.call('HSET', KEYS[1], 'state', 'done', 'finished_at', ARGV[5]) end
redis.call('HSET', KEYS[3], 'body', ARGV[4], 'state', 'queued', 'due_at', ARGV[5], 'updated_at', ARGV[5],
           'attempt', 0, 'fire', n)
redis.call('RPUSH', KEYS[2], ARGV[6])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
redis.call('RPUSH', KEYS[4], ARGV[7])
return {'ok', n}
"""

# KEYS: work hash, its trace. ARGV: node, instance, attempt, now, stage JSON, trace length,
# reason. A run whose node (or this node's earlier life) is gone: lost, once. Returns 1 or 0.
JOB_LOSE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'node') ~= ARGV[1]
   or redis.call('HGET', KEYS[1], 'instance') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'lost', 'reason', ARGV[7], 'finished_at', ARGV[4], 'updated_at', ARGV[4])
redis.call('RPUSH', KEYS[2], ARGV[5])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
return 1
"""

# KEYS: work hash, its trace. ARGV: node, instance, attempt, new node, new instance, now, stage
# JSON, trace length. Another process follows a run on (an ask, which lives in the store).
# Returns 1, or 0 when that run is not the one running.
JOB_ADOPT = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'node') ~= ARGV[1]
   or redis.call('HGET', KEYS[1], 'instance') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], 'node', ARGV[4], 'instance', ARGV[5], 'updated_at', ARGV[6])
redis.call('RPUSH', KEYS[2], ARGV[7])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
return 1
"""

ALL = {"ENQUEUE": ENQUEUE, "SET_PRESENCE": SET_PRESENCE, "CREATE_ASK": CREATE_ASK, "CLOSE_ASK": CLOSE_ASK, "TRACE": TRACE, "CONFIRM_UPTO": CONFIRM_UPTO, "EXPIRE_HEAD": EXPIRE_HEAD,
       "CREATE_QUESTION": CREATE_QUESTION, "DECIDE_QUESTION": DECIDE_QUESTION,
       "CLAIM_FIRE": CLAIM_FIRE, "FINISH_FIRE": FINISH_FIRE, "TAKE_OVER_FIRE": TAKE_OVER_FIRE,
       "SET_SCHEDULE_STATE": SET_SCHEDULE_STATE, "COMMIT_ATTACHMENT": COMMIT_ATTACHMENT,
       "DELETE_ATTACHMENT": DELETE_ATTACHMENT, "GRANT_ATTACHMENT": GRANT_ATTACHMENT, "INBOX_HOLDS": INBOX_HOLDS,
       "JOB_CLAIM": JOB_CLAIM, "JOB_FINISH": JOB_FINISH, "JOB_CANCEL": JOB_CANCEL, "JOB_FIRE": JOB_FIRE,
       "JOB_LOSE": JOB_LOSE, "JOB_ADOPT": JOB_ADOPT,
       # the variants a cluster runs instead (see _publish_then)
       "ENQUEUE_CLUSTER": _enqueue(cluster=True), "CLOSE_ASK_CLUSTER": _close_ask(cluster=True),
       "SET_PRESENCE_CLUSTER": _set_presence(cluster=True)}
SHA = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in ALL.items()}
# The SHA of each script that publishes -> the SHA of its cluster variant.
CLUSTER_VARIANT = {SHA[name]: SHA[f"{name}_CLUSTER"] for name in ("ENQUEUE", "CLOSE_ASK", "SET_PRESENCE")}
