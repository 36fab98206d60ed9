"""The expression language of decision blocks.

A condition is a small Python-like expression over ``input`` (the block's input) and ``env``
(the run's env), for example ``input.name == ""`` or ``len(input["items"]) > 3 and env.retry``.
It is parsed with :mod:`ast` and interpreted here, never passed to ``eval``: only literals,
names ``input``/``env``, key and index access, comparisons, ``and``/``or``/``not``, arithmetic
on numbers and a few pure functions are allowed, so a condition cannot run user code and can be
evaluated inside the executor. Missing keys read as ``None``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

MAX_LENGTH = 1000

Scope = dict[str, Any]
Node = Callable[[Scope], Any]


class ConditionError(ValueError):
    """A condition that does not parse, or fails while it is evaluated."""


def _len(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise ConditionError(f"len() of {type(value).__name__}")


def _str_fn(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if not all(isinstance(a, str) for a in args):
            raise ConditionError(f"{name}() takes strings")
        return fn(*args)

    return call


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "lower": _str_fn("lower", str.lower),
    "upper": _str_fn("upper", str.upper),
    "strip": _str_fn("strip", str.strip),
    "startswith": _str_fn("startswith", str.startswith),
    "endswith": _str_fn("endswith", str.endswith),
}

CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}

COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _arith(op: Callable[[Any, Any], Any], name: str) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if _number(a) and _number(b):
            return op(a, b)
        if name == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        raise ConditionError(
            f"'{name}' needs numbers, got {type(a).__name__} and {type(b).__name__}"
        )

    return apply


ARITH: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _arith(operator.add, "+"),
    ast.Sub: _arith(operator.sub, "-"),
    ast.Mult: _arith(operator.mul, "*"),
    ast.Div: _arith(operator.truediv, "/"),
    ast.Mod: _arith(operator.mod, "%"),
}


def _lookup(container: Any, key: Any) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    if isinstance(container, list | str) and isinstance(key, int) and not isinstance(key, bool):
        return container[key] if -len(container) <= key < len(container) else None
    return None


def _build(node: ast.AST) -> Node:
    match node:
        case ast.Constant(value=value) if value is None or isinstance(
            value, str | int | float | bool
        ):
            return lambda scope: value
        case ast.Name(id=name):
            if name in ("input", "env"):
                return lambda scope: scope[name]
            if name in CONSTANTS:
                constant = CONSTANTS[name]
                return lambda scope: constant
            raise ConditionError(f"unknown name '{name}' (use input, env, true, false, null)")
        case ast.Attribute(value=value, attr=attr):
            if attr.startswith("_"):
                raise ConditionError(f"attribute '{attr}' is not allowed")
            inner = _build(value)
            return lambda scope: _lookup(inner(scope), attr)
        case ast.Subscript(value=value, slice=index):
            inner, key = _build(value), _build(index)
            return lambda scope: _lookup(inner(scope), key(scope))
        case ast.Compare(left=left, ops=ops, comparators=rights):
            first = _build(left)
            steps = [(COMPARE[type(op)], _build(r)) for op, r in zip(ops, rights, strict=True)]

            def compare(scope: Scope) -> bool:
                a = first(scope)
                for fn, right in steps:
                    b = right(scope)
                    try:
                        if not fn(a, b):
                            return False
                    except TypeError as err:
                        raise ConditionError(str(err)) from None
                    a = b
                return True

            return compare
        case ast.BoolOp(op=op, values=values):
            parts = [_build(v) for v in values]
            if isinstance(op, ast.And):
                return lambda scope: all(p(scope) for p in parts)
            return lambda scope: any(p(scope) for p in parts)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            inner = _build(operand)
            return lambda scope: not inner(scope)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            inner = _build(operand)
            return lambda scope: ARITH[ast.Sub](0, inner(scope))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in ARITH:
            fn, a, b = ARITH[type(op)], _build(left), _build(right)
            return lambda scope: fn(a(scope), b(scope))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            fn, built = FUNCTIONS[name], [_build(a) for a in args]

            def call(scope: Scope) -> Any:
                try:
                    return fn(*(a(scope) for a in built))
                except (TypeError, ValueError) as err:
                    raise ConditionError(f"{name}(): {err}") from None

            return call
        case ast.List(elts=elts) | ast.Tuple(elts=elts):
            items = [_build(e) for e in elts]
            return lambda scope: [i(scope) for i in items]
        case ast.Call():
            raise ConditionError(f"only these functions are allowed: {', '.join(FUNCTIONS)}")
    raise ConditionError(f"'{ast.unparse(node)}' is not allowed in a condition")


def compile_condition(expression: str) -> Callable[[Any, Any], bool]:
    """Parse ``expression``; the result maps (input, env) to a bool. Raises ConditionError."""
    if len(expression) > MAX_LENGTH:
        raise ConditionError(f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ConditionError(f"syntax error: {err.msg}") from None
    node = _build(tree.body)

    def evaluate(input_: Any, env: Any) -> bool:
        return bool(node({"input": input_, "env": env}))

    return evaluate
