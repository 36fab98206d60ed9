"""A worklet version prepared for execution: blocks by id, entry, compiled conditions.

Versions are immutable, so each is prepared once per executor and cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.common.conditions import ConditionError, compile_condition
from shared.schemas import Block, DecisionBlock, WorkletVersion

Test = Callable[[Any, Any], bool]

CACHED_GRAPHS = 1024


@dataclass(frozen=True, slots=True)
class Rule:
    when: str
    test: Test
    next: str


@dataclass
class Graph:
    version: WorkletVersion
    blocks: dict[str, Block]
    entry: str | None
    _rules: dict[str, list[Rule] | ConditionError] = field(default_factory=dict)

    @classmethod
    def of(cls, version: WorkletVersion) -> Graph:
        definition = version.definition
        blocks = {b.id: b for b in definition.blocks}
        entry = definition.entry or (definition.blocks[0].id if definition.blocks else None)
        return cls(version, blocks, entry)

    def code_key(self, block_id: str) -> str:
        v = self.version
        return f"{v.app_id}/{v.worklet_id}/{v.version}/{block_id}"

    def rules(self, block: DecisionBlock) -> list[Rule]:
        """The block's conditions, compiled on first use; raises ConditionError."""
        rules = self._rules.get(block.id)
        if rules is None:
            try:
                rules = [Rule(c.when, compile_condition(c.when), c.next) for c in block.conditions]
            except ConditionError as err:
                rules = err
            self._rules[block.id] = rules
        if isinstance(rules, ConditionError):
            raise rules
        return rules


class Graphs:
    """Prepared graphs by version key, least recently used dropped first."""

    def __init__(self, size: int = CACHED_GRAPHS) -> None:
        self._size = size
        self._graphs: OrderedDict[str, Graph] = OrderedDict()

    def get(self, key: str, version: WorkletVersion) -> Graph:
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = Graph.of(version)
            if len(self._graphs) > self._size:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        return graph
