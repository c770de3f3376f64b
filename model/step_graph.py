"""Replay one denoising step's model work as a CUDA graph.

On a GPU the eager BootPIG step is bound by kernel launches, not arithmetic: on an H100 (bf16, 512 px)
a vanilla SD CFG step took 30 ms and the exact k = 4 BootPIG step 80 ms, while their matrix work needs a
few milliseconds. A CUDA graph records the step's thousands of kernels once per job and launches them
as one. Within a job every step has the same shapes, so one capture serves all its steps.

`GraphedStep` wraps a function of tensors: its first call runs the function eagerly on a side stream
(CUDA libraries initialise their workspaces there; that step's result is returned as is) and captures it;
later calls copy their inputs into the captured buffers and replay. The function must not synchronise
with the host (no `.item()`, no data-dependent shapes), which holds for the inference step of
`model.guidance` with the `merged` attention.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

StepFunction = Callable[..., torch.Tensor]


def graphs_available(device: torch.device) -> bool:
    """CUDA graphs need a CUDA device (CPU steps are compute-bound: nothing to gain)."""
    return device.type == "cuda" and torch.cuda.is_available()


class GraphedStep:
    """`step(*tensors) -> tensor`, captured on the first call and replayed on the following ones."""

    def __init__(self, step: StepFunction):
        self.step = step
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: list[torch.Tensor] = []
        self.output: torch.Tensor | None = None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.graph is None:
            return self._warm_up_and_capture(inputs)
        if len(inputs) != len(self.inputs):
            raise ValueError(f"captured with {len(self.inputs)} inputs, called with {len(inputs)}")
        for buffer, value in zip(self.inputs, inputs, strict=True):
            if buffer.shape != value.shape:
                raise ValueError(f"input {tuple(value.shape)} differs from captured {tuple(buffer.shape)}")
            buffer.copy_(value)
        self.graph.replay()
        assert self.output is not None
        return self.output.clone()  # the next replay overwrites the captured output

    def _warm_up_and_capture(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        self.inputs = [x.detach().clone() for x in inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            result = self.step(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.output = self.step(*self.inputs)
        self.graph = graph
        return result

    def release(self) -> None:
        """Free the graph and its memory pool (end of job)."""
        self.graph, self.inputs, self.output = None, [], None
