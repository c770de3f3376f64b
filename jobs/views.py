"""What GET /jobs/{id} shows, read in one Redis round trip: the record and, while it waits, its place.

Polling is the API's busiest request. Reading the record and then looking up its queue position took
two round trips (each through the thread pool); one script returns both.
"""

from __future__ import annotations

from jobs.record import JobRecord
from jobs.store import JobStore

# view(job, rq queue) -> {record fields, position (0-based) or nil}
_VIEW = """
local fields = redis.call('HGETALL', KEYS[1])
local status, rq_id
for i = 1, #fields, 2 do
  if fields[i] == 'status' then status = fields[i + 1] end
  if fields[i] == 'rq_id' then rq_id = fields[i + 1] end
end
local position = false
if status == 'queued' and rq_id and rq_id ~= '' then position = redis.call('LPOS', KEYS[2], rq_id) end
return {fields, position}
"""


class JobViews:
    def __init__(self, store: JobStore):
        self.store = store
        self._view = store.redis.register_script(_VIEW)

    def get(self, job_id: str) -> tuple[JobRecord | None, int | None]:
        """The record (None when there is none) and its 1-based queue position (None unless waiting)."""
        fields, position = self._view(keys=[self.store.job_key(job_id), self.store.queue.key])
        if not fields:
            return None, None
        record = JobRecord.from_hash(dict(zip(fields[::2], fields[1::2], strict=True)))
        return record, None if position is None else int(position) + 1
