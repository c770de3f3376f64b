"""The Lua scripts behind every job state change: each runs atomically inside Redis.

A state change touches the job hash and the `running`/`queued` indexes together; doing it in one script
means no reader, reaper or second worker can ever see half of it. Signatures read
`name(KEYS...) [ARGV...] -> result`.
"""

# claim(job, running, queued) [id, attempt, worker, now, record ttl] -> "ok" | status | "stale" | "missing"
#   The record's life starts again at the claim: one that waited long must not expire during its run.
CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' then return status end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[2] then return 'stale' end
redis.call('HSET', KEYS[1], 'status', 'started', 'worker', ARGV[3], 'started_at', ARGV[4], 'step', 0)
redis.call('HDEL', KEYS[1], 'missing_since')
redis.call('HINCRBY', KEYS[1], 'runs', 1)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 'ok'
"""

# finish(job, running) [id, worker, attempt, field, value, ...] -> 1 if this worker still owned the job
FINISH = """
if redis.call('HGET', KEYS[1], 'status') ~= 'started' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2]
   or redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""

# cancel(job, queued) [now, id] -> "canceled" (was queued) | "cancelling" (was started) | final status
#   | "missing"
CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[1], 'error', 'canceled by the client')
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 'canceled'
end
if status == 'started' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  return 'cancelling'
end
return status
"""

# reap(job, running, queued) [id, worker, max attempts, now, failure message, retry reason, started_at|""]
#   -> requeued | failed | canceled | stale | moved. With started_at, only that very run is reaped.
#   A job whose client asked to cancel it is canceled rather than run again.
REAP = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'started' then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 'stale'
end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 'moved' end
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'started_at') ~= ARGV[7] then return 'moved' end
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[4], 'error', 'canceled by the client')
  return 'canceled'
end
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt'))
if attempt < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', attempt + 1, 'step', 0, 'worker', '',
             'rq_id', '', 'retry_reason', ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  return 'requeued'
end
redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[4], 'error', ARGV[5])
return 'failed'
"""

# release(job, running, queued) [id, worker, now] -> released | canceled | 0: a stopping worker hands its
#   job back (same attempt); one the client asked to cancel is canceled instead of being run again.
RELEASE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'started' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then
  return 0
end
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[3], 'error', 'canceled by the client')
  return 'canceled'
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'step', 0, 'worker', '', 'rq_id', '')
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 'released'
"""

# adopt(job, queued, rq queue) [id, now, seen missing before, new rq id] -> waiting | missing | adopt | stale
#   A queued job must sit in RQ's queue. One seen absent twice, `grace` apart, lost its RQ entry (a process
#   died between changing the record and enqueueing): it gets a new RQ id, which the caller enqueues.
#   Calling this again is harmless, so a crash between this script and the enqueue is recovered too.
ADOPT = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 'stale'
end
local rq_id = redis.call('HGET', KEYS[1], 'rq_id')
if rq_id and rq_id ~= '' and redis.call('LPOS', KEYS[3], rq_id) then
  redis.call('HDEL', KEYS[1], 'missing_since')
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return 'waiting'
end
local since = redis.call('HGET', KEYS[1], 'missing_since')
if not since or tonumber(since) > tonumber(ARGV[3]) then
  if not since then redis.call('HSET', KEYS[1], 'missing_since', ARGV[2]) end
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return 'missing'
end
redis.call('HDEL', KEYS[1], 'missing_since')
redis.call('HSET', KEYS[1], 'rq_id', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 'adopt'
"""
