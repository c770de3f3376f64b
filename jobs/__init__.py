"""Jobs: the Redis job store that the API (`app`) and the workers (`worker`) share.

Light on purpose (redis, rq, pydantic; no torch) so the API imports it without the model stack.
"""
