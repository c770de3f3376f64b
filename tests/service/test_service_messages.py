"""Worker errors become short messages for clients: no paths, no stack traces."""

from __future__ import annotations

import pytest
import torch
from rq.timeouts import JobTimeoutException

from model.references import TracerSegmenter
from worker.errors import JobTimedOut, human_message


def test_cuda_out_of_memory_is_explained():
    message = human_message(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert "GPU ran out of memory" in message and "GiB" not in message


def test_paths_are_hidden():
    # An error of no known cause: the client learns its type and where to look, never its text.
    message = human_message(ValueError("cannot read /srv/models/secret/unet/config.json: bad json"))
    assert "/srv" not in message and "secret" not in message and message.startswith("generation failed")
    assert "ValueError" in message and "worker log" in message


def test_timeouts_and_unknown_errors():
    assert "limit" in human_message(JobTimedOut("the job took longer than the 5 s limit and was stopped"))
    assert "time limit" in human_message(JobTimeoutException("Task exceeded maximum timeout value"))
    message = human_message(KeyError("weird internal thing at 0x7f"))
    assert "internal error" in message and "0x7f" not in message


def test_missing_tracer_weights_suggest_segment_none(tmp_path):
    with pytest.raises(FileNotFoundError) as missing:  # what the segmenter raises, typed
        TracerSegmenter(tmp_path / "root" / ".cache" / "tracer_b7.pth")
    message = human_message(missing.value)
    assert "segment=none" in message and str(tmp_path) not in message and "/root" not in message
