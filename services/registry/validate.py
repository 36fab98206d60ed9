"""Checking a worklet definition before it is stored (docs/api.md, "Definitions").

Code is parsed and compiled, never executed; conditions are parsed with the executor's own
expression language. The first problem found is raised as ``InvalidDefinition`` naming the
block at fault.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

import msgspec

from services.common.conditions import ConditionError, compile_condition
from services.registry.cycles import find_cycle
from services.registry.errors import InvalidDefinition
from shared.schemas import Block, CodeBlock, DecisionBlock, Definition, WorkletBlock
from shared.subjects import is_id

MAX_NAME = 100
MAX_ARGUMENTS = 3  # block_input, env, context

_Function = ast.FunctionDef | ast.AsyncFunctionDef


def check_definition(definition: Definition, worklets: Mapping[str, str]) -> Definition:
    """The definition with worklet blocks resolved to ``worklet_id``, or InvalidDefinition.

    ``worklets`` maps every id and every name of the application's worklets to the id.
    """
    check_name(definition.name)
    _check_settings(definition)
    blocks = _check_ids(definition.blocks)
    entry = definition.entry if definition.entry is not None else definition.blocks[0].id
    if entry not in blocks:
        raise InvalidDefinition(f"entry {entry!r} names no block")
    for block in definition.blocks:
        for label, target in _edges(block):
            if target not in blocks:
                raise InvalidDefinition(
                    f"{label} {target!r} of block {block.id!r} names no block", block=block.id
                )
    _check_acyclic(definition.blocks, blocks)
    _check_reachable(definition.blocks, blocks, entry)
    resolved: list[Block] = []
    for block in definition.blocks:
        match block:
            case CodeBlock():
                _check_code(block)
            case DecisionBlock():
                _check_conditions(block)
            case WorkletBlock():
                target_id = worklets.get(block.worklet)
                if target_id is None:
                    raise InvalidDefinition(
                        f"block {block.id!r} names no worklet {block.worklet!r} of this "
                        "application (use a worklet's id or name)",
                        block=block.id,
                    )
                block = msgspec.structs.replace(block, worklet_id=target_id)
        resolved.append(block)
    return msgspec.structs.replace(definition, blocks=resolved)


def worklet_references(definition: Definition) -> set[str]:
    """What the worklet blocks name (ids or names), to be resolved by the caller."""
    return {b.worklet for b in definition.blocks if isinstance(b, WorkletBlock)}


def check_name(
    name: str, what: str = "worklet", error: type[InvalidDefinition] = InvalidDefinition
) -> None:
    """A worklet's or view's name: not blank, not too long, printable, no '/'."""
    if not name.strip():
        raise error(f"the {what} needs a name")
    if len(name) > MAX_NAME:
        raise error(f"the name is longer than {MAX_NAME} characters")
    if "/" in name or not name.isprintable() or name != name.strip():
        raise error("the name may not contain '/', control characters, or leading/trailing spaces")


def _check_settings(definition: Definition) -> None:
    settings = definition.settings
    for label, value in (
        ("timeout", settings.timeout),
        ("background_timeout", settings.background_timeout),
    ):
        if value is not None and not value > 0:
            raise InvalidDefinition(f"settings.{label} must be a positive number of seconds")


def _check_ids(blocks: list[Block]) -> dict[str, Block]:
    if not blocks:
        raise InvalidDefinition("a worklet needs at least one block")
    seen: dict[str, Block] = {}
    for index, block in enumerate(blocks):
        if not block.id:
            raise InvalidDefinition(f"block {index} has an empty id", block=block.id)
        if not is_id(block.id):
            raise InvalidDefinition(
                f"block id {block.id!r} may only contain letters, digits, '_' and '-' "
                "(at most 64 characters)",
                block=block.id,
            )
        if block.id in seen:
            raise InvalidDefinition(
                f"block id {block.id!r} is used by more than one block", block=block.id
            )
        seen[block.id] = block
    return seen


def _edges(block: Block) -> list[tuple[str, str]]:
    """(label, target id) of every block this one may hand over to."""
    match block:
        case DecisionBlock():
            edges = [(f"condition {i + 1} next", c.next) for i, c in enumerate(block.conditions)]
            if block.default is not None:
                edges.append(("default", block.default))
            return edges
        case _:
            return [("next", block.next)] if block.next is not None else []


def _check_acyclic(order: list[Block], blocks: Mapping[str, Block]) -> None:
    cycle = find_cycle(
        (block.id for block in order), lambda id_: [target for _, target in _edges(blocks[id_])]
    )
    if cycle:
        raise InvalidDefinition(f"the blocks form a cycle: {' -> '.join(cycle)}", block=cycle[-2])


def _check_reachable(order: list[Block], blocks: Mapping[str, Block], entry: str) -> None:
    reached = {entry}
    todo = [entry]
    while todo:
        for _, target in _edges(blocks[todo.pop()]):
            if target not in reached:
                reached.add(target)
                todo.append(target)
    for block in order:
        if block.id not in reached:
            raise InvalidDefinition(
                f"block {block.id!r} cannot be reached from the entry {entry!r}", block=block.id
            )


def _check_code(block: CodeBlock) -> None:
    filename = f"<block {block.id}>"
    try:
        tree = ast.parse(block.source, filename=filename)
        compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as err:
        where = f"line {err.lineno}" if err.lineno else "the source"
        raise InvalidDefinition(
            f"the code of block {block.id!r} does not compile: {err.msg} ({where})",
            block=block.id,
        ) from None
    except (ValueError, RecursionError, MemoryError) as err:
        raise InvalidDefinition(
            f"the code of block {block.id!r} does not compile: {err}", block=block.id
        ) from None
    function = _entry_function(block, tree)
    if isinstance(function, ast.AsyncFunctionDef):
        raise InvalidDefinition(
            f"function {function.name!r} of block {block.id!r} must be a plain `def`, "
            "not `async def`",
            block=block.id,
        )
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    required = len(positional) - len(arguments.defaults)
    if required > MAX_ARGUMENTS:
        raise InvalidDefinition(
            f"function {function.name!r} of block {block.id!r} takes {required} required "
            f"positional arguments; at most {MAX_ARGUMENTS} are passed "
            "(block_input, env, context)",
            block=block.id,
        )
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        if default is None:
            raise InvalidDefinition(
                f"function {function.name!r} of block {block.id!r} has a required "
                f"keyword-only argument {argument.arg!r}, which is never passed",
                block=block.id,
            )


def _entry_function(block: CodeBlock, tree: ast.Module) -> _Function:
    functions = {n.name: n for n in tree.body if isinstance(n, _Function)}
    if block.function is not None:
        if block.function not in functions:
            raise InvalidDefinition(
                f"block {block.id!r} has no top-level function {block.function!r}",
                block=block.id,
            )
        return functions[block.function]
    if len(functions) == 1:
        return next(iter(functions.values()))
    if "main" in functions:
        return functions["main"]
    if not functions:
        raise InvalidDefinition(
            f"block {block.id!r} defines no function; write e.g. "
            "`def main(block_input, env, context): ...`",
            block=block.id,
        )
    raise InvalidDefinition(
        f"block {block.id!r} has several top-level functions ({', '.join(functions)}) and "
        "none is called `main`; set `function` to the one to run",
        block=block.id,
    )


def _check_conditions(block: DecisionBlock) -> None:
    for number, condition in enumerate(block.conditions, start=1):
        try:
            compile_condition(condition.when)
        except ConditionError as err:
            raise InvalidDefinition(
                f"condition {number} of block {block.id!r} does not parse: {err}",
                block=block.id,
            ) from None
