"""The ``calculator`` tool: arithmetic on numbers, evaluated by walking the syntax tree.

Never ``eval``: the expression is parsed with ``ast.parse(mode="eval")`` and only numbers,
``+ - * / // % **``, unary signs, parentheses, the functions in :data:`FUNCTIONS` and the
constants in :data:`CONSTANTS` are accepted. ``^`` means power, as on a calculator.

Every operation is bounded before it runs: integer results above :data:`MAX_INT_BITS` bits
are refused (``9**9**9`` is an error observation, not a hang), float overflow is an error,
and ``factorial``/``comb``/``perm`` take small arguments only. Errors are observations.
"""

from __future__ import annotations

import ast
import math
import operator
import time
from collections.abc import Callable
from typing import Any

from tirl.types import Observation, ToolCall

MAX_EXPRESSION_CHARS = 2000
MAX_INT_BITS = 4000  # ~1200 decimal digits
MAX_FACTORIAL = 1000
Number = int | float


class CalculatorError(ValueError):
    """The expression is not allowed or its value cannot be computed within the limits."""


def _check(value: Number) -> Number:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError(f"result too large (more than {MAX_INT_BITS} bits)")
    if isinstance(value, float) and math.isnan(value):
        raise CalculatorError("result is not a number")
    if isinstance(value, float) and math.isinf(value):
        raise CalculatorError("result too large (floating-point overflow)")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > MAX_INT_BITS:
            raise CalculatorError(f"result too large (more than {MAX_INT_BITS} bits)")
    result = operator.pow(base, exponent)
    if isinstance(result, complex):
        raise CalculatorError("result is a complex number")
    return result


def _small(limit: int, fn: Callable[..., int]) -> Callable[..., int]:
    def bounded(*args: Number) -> int:
        if any(not isinstance(a, int) or a > limit for a in args):
            raise CalculatorError(f"{fn.__name__} takes integers up to {limit}")
        return fn(*args)

    bounded.__name__ = fn.__name__
    return bounded


def _round(x: Number, digits: int | None = None) -> Number:
    if digits is not None and not isinstance(digits, int):
        raise CalculatorError("round() digits must be an integer")
    return round(x) if digits is None else round(x, digits)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "exp": math.exp,
    "log": _log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "hypot": math.hypot,
    "floor": math.floor,
    "ceil": math.ceil,
    "gcd": math.gcd,
    "lcm": math.lcm,
    "factorial": _small(MAX_FACTORIAL, math.factorial),
    "comb": _small(10**4, math.comb),
    "perm": _small(MAX_FACTORIAL, math.perm),
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: dict[type, Callable[[Any, Any], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
_UNARY: dict[type, Callable[[Any], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        return _check(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise CalculatorError(f"unknown name {node.id!r}; constants: {', '.join(CONSTANTS)}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise CalculatorError(f"unknown function {name!r}; functions: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise CalculatorError("functions take positional arguments only")
        return _check(FUNCTIONS[node.func.id](*(_eval(a) for a in node.args)))
    raise CalculatorError(f"not allowed in an arithmetic expression: {ast.unparse(node)!r}")


def evaluate(expression: str) -> Number:
    """The value of ``expression``; raises CalculatorError, ZeroDivisionError, ValueError
    (math domain), OverflowError or TypeError (wrong arity) on bad input."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not an arithmetic expression: {exc.msg}") from None
    return _eval(tree)


def format_number(value: Number) -> str:
    """Integers exactly; floats to 15 significant digits, which hides binary noise such as
    0.1 + 0.2 = 0.30000000000000004 while keeping every digit a double can guarantee."""
    if isinstance(value, int):
        return str(value)
    return format(value, ".15g")


class Calculator:
    """Tool ``calculator`` (main argument ``expression``)."""

    name = "calculator"
    main_arg = "expression"
    description = (
        "Evaluate an arithmetic expression: numbers, + - * / // % ** (or ^), parentheses, "
        f"functions {', '.join(FUNCTIONS)}, constants {', '.join(CONSTANTS)}."
    )
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. (3 + 4) * sqrt(2)"}},
        "required": ["expression"],
    }

    def compute(self, expression: str) -> Observation:
        started = time.perf_counter()
        try:
            output, ok, error = format_number(evaluate(expression)), True, None
        except (CalculatorError, ArithmeticError, ValueError, TypeError, RecursionError, MemoryError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            output, ok = f"Error: {error}", False
        return Observation(ok=ok, output=output, error=error, latency_ms=(time.perf_counter() - started) * 1000)

    async def run(self, call: ToolCall, session: str) -> Observation:
        if call.error:
            return Observation(ok=False, output=call.error, error="MalformedCall")
        expression = call.arguments.get("expression") if isinstance(call.arguments, dict) else None
        if not isinstance(expression, str):
            return Observation(ok=False, output="error: the calculator takes one string argument, 'expression'", error="MalformedCall")
        return self.compute(expression)

    async def close_session(self, session: str) -> None:
        """Stateless: nothing to forget."""

    async def aclose(self) -> None:
        """Holds no resources."""
