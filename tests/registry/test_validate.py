"""Definition rules, checked without servers (the HTTP tests repeat them end to end)."""

from __future__ import annotations

import msgspec
import pytest

from services.registry.errors import InvalidDefinition
from services.registry.validate import check_definition, worklet_references
from shared.schemas import CodeBlock, Definition, WorkletBlock
from tests.registry.definitions import BAD, Bad, code, decision, definition, hello


def parse(body: dict[str, object]) -> Definition:
    return msgspec.convert(body, Definition)


SHAPE_ERRORS = {
    "block id of the wrong type",
    "unknown block type",
    "unknown field in a block",
    "unknown top-level field",
    "missing blocks",
    "code without source",
    "timeout of the wrong type",
}


@pytest.mark.parametrize(
    "case", [b for b in BAD if b.rule not in SHAPE_ERRORS], ids=lambda b: b.rule
)
def test_refused(case: Bad) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        check_definition(parse(case.body), {"greeter": "w1"})
    assert case.says in refused.value.message
    assert refused.value.block == case.block


def test_docs_example_is_accepted_and_resolves_the_worklet() -> None:
    checked = check_definition(parse(hello()), {"greeter": "wk1"})
    greet = checked.blocks[3]
    assert isinstance(greet, WorkletBlock)
    assert (greet.worklet, greet.worklet_id) == ("greeter", "wk1")
    assert worklet_references(parse(hello())) == {"greeter"}


def test_entry_defaults_to_the_first_block() -> None:
    # "b" is only reachable because "a", the first block, is the entry
    check_definition(parse(definition("w", code("a", next="b"), code("b"))), {})
    with pytest.raises(InvalidDefinition, match="cannot be reached"):
        check_definition(parse(definition("w", code("b"), code("a", next="b"))), {})


@pytest.mark.parametrize(
    "source, function",
    [
        ("def only(x):\n    return x\n", None),  # the only top-level function
        ("def helper():\n    pass\n\ndef main():\n    return helper()\n", None),  # main
        ("def a():\n    pass\n\ndef b(x, y, z, w=1, *rest, k=2, **more):\n    pass\n", "b"),
        (
            "import math\n\nclass K:\n    def m(self, a, b, c, d):\n        pass\n\ndef main():\n    return math.pi\n",
            None,
        ),
        ("def main(block_input, env, context, /):\n    return 1\n", None),
    ],
)
def test_accepted_functions(source: str, function: str | None) -> None:
    check_definition(parse(definition("w", code("a", source, function=function))), {})


def test_async_and_keyword_only_functions_are_refused() -> None:
    with pytest.raises(InvalidDefinition, match="plain `def`"):
        check_definition(parse(definition("w", code("a", "async def main():\n    pass\n"))), {})
    with pytest.raises(InvalidDefinition, match="keyword-only argument 'k'"):
        check_definition(parse(definition("w", code("a", "def main(*, k):\n    pass\n"))), {})


def test_code_is_compiled_not_run() -> None:
    source = "import os\nos.abort()\n\ndef main():\n    return 1\n"
    check_definition(parse(definition("w", code("a", source))), {})  # still alive


def test_diamond_is_not_a_cycle() -> None:
    body = definition(
        "w",
        decision("d", ("input.x", "left"), default="right"),
        code("left", next="end"),
        code("right", next="end"),
        code("end"),
    )
    checked = check_definition(parse(body), {})
    assert [b.id for b in checked.blocks] == ["d", "left", "right", "end"]
    assert isinstance(checked.blocks[1], CodeBlock)


def test_long_chain_is_checked_quickly() -> None:
    blocks = [code(f"b{i}", next=f"b{i + 1}") for i in range(3000)] + [code("b3000")]
    check_definition(parse(definition("w", *blocks)), {})
