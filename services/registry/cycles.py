"""Finding a cycle in a directed graph given by its nodes and a successor function."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def find_cycle(roots: Iterable[str], successors: Callable[[str], Iterable[str]]) -> list[str]:
    """A cycle reachable from ``roots`` as ``[a, b, ..., a]``, or ``[]`` if there is none.

    Iterative depth-first search (no recursion limit on long chains); ``path`` holds the nodes
    on the current stack, so the node that closes the cycle is ``cycle[-2]``.
    """
    done: set[str] = set()
    for root in roots:
        if root in done:
            continue
        path = [root]
        on_path = {root}
        pending = [iter(successors(root))]
        while pending:
            target = next(pending[-1], None)
            if target is None:
                pending.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
            elif target in on_path:
                return [*path[path.index(target) :], target]
            elif target not in done:
                path.append(target)
                on_path.add(target)
                pending.append(iter(successors(target)))
    return []
