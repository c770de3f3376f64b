"""The GPU side of the service: `bootpig worker` loads the pipeline once and runs queued jobs.

The job store it shares with the API lives in `jobs` (light: no torch).
"""
