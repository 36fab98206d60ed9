"""Worklet definitions for the tests: the example of docs/api.md, and one refused definition
for every rule of docs/api.md "Definitions"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HELLO_SOURCE = """\
def main(block_input, env, context):
    env["greeting"] = "Hello"
    return {"name": (block_input or {}).get("name", "").strip()}
"""


def code(
    block_id: str, source: str = "def main(block_input):\n    return block_input\n", **extra: Any
) -> dict[str, Any]:
    return {"id": block_id, "type": "code", "source": source, **extra}


def definition(name: str, *blocks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "blocks": list(blocks) or [code("main")], **extra}


def hello(worklet: str = "greeter") -> dict[str, Any]:
    """The example definition of docs/api.md (needs a worklet called ``worklet``)."""
    return {
        "name": "hello",
        "description": "Greets someone",
        "entry": "prepare",
        "settings": {"timeout": 300, "background": False, "background_timeout": 3600},
        "blocks": [
            code("prepare", HELLO_SOURCE, next="route"),
            {
                "id": "route",
                "type": "decision",
                "conditions": [{"when": 'input.name == ""', "next": "anonymous"}],
                "default": "greet",
            },
            code(
                "anonymous",
                'def main(block_input):\n    return {"name": "stranger"}\n',
                next="greet",
            ),
            {"id": "greet", "type": "worklet", "worklet": worklet},
        ],
    }


def decision(
    block_id: str, *conditions: tuple[str, str], default: str | None = None
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "id": block_id,
        "type": "decision",
        "conditions": [{"when": when, "next": target} for when, target in conditions],
    }
    if default is not None:
        block["default"] = default
    return block


@dataclass(frozen=True)
class Bad:
    """A definition that must be refused: the block named, and words of the message."""

    rule: str
    body: dict[str, Any]
    block: str | None
    says: str


BAD: list[Bad] = [
    Bad("empty block id", definition("w", code("")), "", "empty id"),
    Bad("malformed block id", definition("w", code("a.b")), "a.b", "may only contain"),
    Bad(
        "repeated block id",
        definition("w", code("a", next="b"), code("b"), code("a")),
        "a",
        "more than one block",
    ),
    Bad("entry names no block", definition("w", code("a"), entry="nope"), None, "entry 'nope'"),
    Bad("next names no block", definition("w", code("a", next="nope")), "a", "'nope'"),
    Bad(
        "condition next names no block",
        definition("w", decision("route", ("true", "nope"), default="a"), code("a")),
        "route",
        "condition 1 next 'nope'",
    ),
    Bad(
        "default names no block",
        definition("w", decision("route", ("true", "a"), default="nope"), code("a")),
        "route",
        "default 'nope'",
    ),
    Bad(
        "cycle",
        definition("w", code("a", next="b"), code("b", next="a")),
        "b",
        "cycle: a -> b -> a",
    ),
    Bad(
        "cycle through a decision",
        definition("w", code("a", next="d"), decision("d", ("input.again", "a"))),
        "d",
        "cycle",
    ),
    Bad("a block next to itself", definition("w", code("a", next="a")), "a", "cycle: a -> a"),
    Bad(
        "unreachable block",
        definition("w", code("a"), code("orphan")),
        "orphan",
        "cannot be reached",
    ),
    Bad(
        "code does not compile",
        definition("w", code("a", "def main(block_input):\n    return (\n")),
        "a",
        "line 2",
    ),
    Bad(
        "code compiles only as an expression",
        definition("w", code("a", "def main():\n    pass\nreturn 1\n")),
        "a",
        "line 3",
    ),
    Bad(
        "named function missing",
        definition("w", code("a", "def main():\n    return 1\n", function="run")),
        "a",
        "no top-level function 'run'",
    ),
    Bad("no function at all", definition("w", code("a", "x = 1\n")), "a", "defines no function"),
    Bad(
        "several functions and none chosen",
        definition("w", code("a", "def f():\n    return 1\n\ndef g():\n    return 2\n")),
        "a",
        "several top-level functions (f, g)",
    ),
    Bad(
        "more than three required positional arguments",
        definition("w", code("a", "def main(a, b, c, d):\n    return 1\n")),
        "a",
        "4 required positional arguments",
    ),
    Bad(
        "condition does not parse",
        definition("w", decision("route", ("input.name ==", "a"), default="a"), code("a")),
        "route",
        "condition 1 of block 'route' does not parse",
    ),
    Bad(
        "condition calls what it may not",
        definition("w", decision("route", ("__import__('os')", "a"), default="a"), code("a")),
        "route",
        "does not parse",
    ),
    Bad(
        "worklet block names no worklet",
        definition("w", {"id": "call", "type": "worklet", "worklet": "missing"}),
        "call",
        "no worklet 'missing'",
    ),
    Bad("timeout zero", definition("w", settings={"timeout": 0}), None, "settings.timeout"),
    Bad("timeout negative", definition("w", settings={"timeout": -1}), None, "settings.timeout"),
    Bad(
        "background timeout not positive",
        definition("w", settings={"background_timeout": 0}),
        None,
        "settings.background_timeout",
    ),
    Bad("no blocks", {"name": "w", "blocks": []}, None, "at least one block"),
    Bad("empty name", definition(" "), None, "needs a name"),
    # the body is not JSON of this shape
    Bad(
        "block id of the wrong type",
        definition("w", code("a"), {"id": 1, "type": "code", "source": ""}),
        None,
        "Expected `str`, got `int` - at `$.blocks[1].id`",
    ),
    Bad(
        "unknown block type",
        definition("w", {"id": "a", "type": "shell", "source": ""}),
        "a",
        "Invalid value 'shell' - at `$.blocks[0].type`",
    ),
    Bad(
        "unknown field in a block",
        definition("w", code("a", retries=3)),
        "a",
        "unknown field `retries` - at `$.blocks[0]`",
    ),
    Bad(
        "unknown top-level field",
        definition("w", owner="me"),
        None,
        "unknown field `owner` - at `$`",
    ),
    Bad("missing blocks", {"name": "w"}, None, "missing required field `blocks`"),
    Bad(
        "code without source",
        definition("w", {"id": "a", "type": "code"}),
        "a",
        "missing required field `source` - at `$.blocks[0]`",
    ),
    Bad(
        "timeout of the wrong type",
        definition("w", settings={"timeout": "soon"}),
        None,
        "at `$.settings.timeout`",
    ),
]
