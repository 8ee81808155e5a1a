"""Compile rule conditions to closures at load time (never eval).

A missing or null field fails every comparison except `!=` and `not_in`
(an event without a warehouse is not in WH-TEST), and a comparison between a
number and a string is simply false: an odd event never raises here. An
`expr` (CEL, compiled once by rules/expr.py) that has no value for an event
(a field it reads is missing, or it fails) makes its condition false, `!=`
included (contract section 3b).
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Iterable

from .model import Condition

Getter = Callable[[Any], Any]
Predicate = Callable[[Any], bool]

_NUMERIC = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def getter(field: Any) -> Getter:
    """Read `field` (or `attrs.NAME`) from a validated event model."""
    if field.startswith("attrs."):
        name = field[6:]

        def get_attr(ev: Any) -> Any:
            a = ev.attrs
            return a.get(name) if a else None

        return get_attr
    return operator.attrgetter(field)


def _is_num(v: Any) -> bool:
    return type(v) is int or type(v) is float


def compare(op: str, want: Any) -> Callable[[Any], bool]:
    """A test on one value: `value op want`."""
    if op in _NUMERIC:
        fn = _NUMERIC[op]
        if _is_num(want):
            return lambda v: (type(v) is int or type(v) is float) and fn(v, want)
        return lambda v: type(v) is type(want) and fn(v, want)
    if op == "==":
        if _is_num(want):
            return lambda v: (type(v) is int or type(v) is float) and v == want
        return lambda v: v == want and type(v) is type(want)
    if op == "!=":
        if _is_num(want):
            return lambda v: not ((type(v) is int or type(v) is float) and v == want)
        return lambda v: not (v == want and type(v) is type(want))
    if op in ("in", "not_in"):
        nums = frozenset(x for x in want if _is_num(x))
        strs = frozenset(x for x in want if isinstance(x, str))

        def member(v: Any) -> bool:
            if type(v) is str:  # the common case first
                return v in strs
            if isinstance(v, list):  # a list field (promo_codes) matches if any item does
                return any(member(x) for x in v)
            return _is_num(v) and v in nums

        return member if op == "in" else (lambda v: not member(v))
    if op == "exists":
        expect = True if want is None else bool(want)
        return lambda v: (v is not None) is expect
    raise ValueError(f"unknown operator {op!r}")


def value_getter(rule: Any, source: str, exprs: list | None = None) -> Getter:
    """What a rule (or condition) reads per event: `field`, or `expr`
    (returning NO_VALUE when the expression has none)."""
    if getattr(rule, "expr", None) is None:
        return getter(rule.field)
    from .expr import compile_expr

    e = compile_expr(source, rule.expr)
    if exprs is not None:
        exprs.append(e)
    return e


def _expr_condition(c: Condition, source: str, exprs: list | None) -> Predicate:
    from .expr import NO_VALUE

    e = value_getter(c, source, exprs)
    if c.op is None:  # a boolean expression alone
        return lambda ev: e(ev) is True
    test = compare(c.op, c.value)
    return lambda ev: (v := e(ev)) is not NO_VALUE and test(v)


def compile_condition(c: Condition, source: str = "", exprs: list | None = None) -> Predicate:
    if c.expr is not None:
        return _expr_condition(c, source, exprs)
    get = getter(c.field)
    want = c.value
    # One closure instead of two for the most common filters: a string never
    # equals a number, so no type test is needed.
    if isinstance(want, str) and c.op == "==":
        return lambda ev: get(ev) == want
    if isinstance(want, str) and c.op == "!=":
        return lambda ev: get(ev) != want
    assert c.op is not None  # a field condition has an op (the model's check)
    test = compare(c.op, want)
    return lambda ev: test(get(ev))


def compile_all(conds: Iterable[Condition], source: str = "", exprs: list | None = None) -> Predicate | None:
    """AND of all conditions, or None when there are none (the fast path)."""
    preds = [compile_condition(c, source, exprs) for c in conds]
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda ev: a(ev) and b(ev)
    if len(preds) == 3:  # price-below-floor's filter: no generator per event
        a, b, c = preds
        return lambda ev: a(ev) and b(ev) and c(ev)
    return lambda ev: all(p(ev) for p in preds)
