"""The per-block trace of a run, kept within ``max_trace_bytes``.

Inputs, outputs and logs count against the budget; once a block's data would exceed it, that
data is replaced by ``{"truncated": true, "bytes": N}`` (logs by one line saying so).
"""

from __future__ import annotations

import msgspec
from msgspec import Raw

from shared.schemas import BlockTrace


def truncated(size: int) -> Raw:
    return Raw(msgspec.json.encode({"truncated": True, "bytes": size}))


class Trace:
    def __init__(self, budget: int) -> None:
        self.blocks: list[BlockTrace] = []
        self._room = budget

    def data(self, raw: Raw) -> Raw:
        size = len(raw)
        if size > self._room:
            self._room = 0
            return truncated(size)
        self._room -= size
        return raw

    def logs(self, lines: list[str]) -> list[str]:
        if not lines:
            return lines
        size = sum(len(line) + 1 for line in lines)
        if size > self._room:
            self._room = 0
            return [f"[{len(lines)} log lines ({size} characters) left out of the trace]"]
        self._room -= size
        return lines

    def add(self, block: BlockTrace) -> BlockTrace:
        block.input = self.data(block.input)
        block.output = self.data(block.output)
        block.logs = self.logs(block.logs)
        self.blocks.append(block)
        return block
