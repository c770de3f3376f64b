"""The queue side of the service: the Redis job store shared with the API, and the GPU worker.

`worker.store` is light (redis + rq only) so the API can import it without torch.
"""
