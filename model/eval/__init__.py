"""DreamBooth-benchmark evaluation (CLIP-T, CLIP-I, DINO) of BootPIG and of the plain base model.

`dataset` reads a DreamBooth-layout folder, `metrics` holds the cosine metrics and their encoders, `plan`
says what a run covers (work items, shards, seeds, output paths), `run` generates (resumable, shardable)
and scores, `report` writes metrics.json, report.md and grids.
"""
