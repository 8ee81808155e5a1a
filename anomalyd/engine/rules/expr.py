"""Analyst expressions (contract 3b, "Expressions"): CEL, compiled once.

The language is CEL, run by Google's cel-cpp through `cel-expr-python`
(notes/expressions.md says why). An expression is parsed and *type-checked*
at load time against the source's declared fields, so a syntax error, an
unknown field (`unit_prize`) or an impossible type (`sku * 2`) is an
`ExprCompileError` carrying every error with its 0-based offset in the text.

Names: an expression reads the event's top-level fields by name
(`unit_price`, `promo_codes`, `ts`) and `attrs.NAME` (attrs is
`map(string, dyn)`: its values are checked at run time).

Numbers: CEL does not mix int and double (`1 + 2.5` is an error there). JSON
does not tell an integer from a float, so this module declares, through
cel-cpp's own environment configuration (not by rewriting the text), the
mixed overloads CEL lacks: `+ - * /` on (int, double) and (double, int), done
by a tiny Python function and returning a double; `== != < <= > >=` and `in`
across int and double, which cel-cpp's runtime already evaluates
numerically (its heterogeneous equality and comparisons) and only its
checker refused. int with int stays CEL int arithmetic (overflow is an
error, `7 / 2 == 3`). Fields declared `float` in events.py are doubles (an
integral JSON value such as `unit_price: 100` arrives as 100.0), `int` ones
(`quantity`, `ts`, ...) are ints. A number result is therefore a Python
`int` when every operand was an int and a `float` otherwise; callers
compare it as a number (`100 == 100.0`).

Run time (`Expr.__call__`) never raises and returns a plain Python value or
`NO_VALUE`:
- `missing` += 1: a field the expression needs is absent (an optional field
  that is None, `attrs.NAME` with no such key or no attrs at all). An absent
  field is left out of the activation, so CEL's own error absorption still
  applies: `merchant_id == "M-1" || quantity > 2` is true when quantity is 3
  and merchant_id absent, and `has(attrs.x)` is simply false.
- `errors` += 1: any other failure (division by zero, int overflow, a
  type mismatch with an attrs value such as `attrs.x * 2` with x = "abc"),
  and a double result that is not finite (`1.0 / 0.0` is +Inf in CEL: it is
  reported as a failure so that every division by zero is one).
"""

from __future__ import annotations

import difflib
import operator
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cel_expr_python import cel

from ..events import EVENT_MODELS, field_kinds

__all__ = ["NO_VALUE", "ExprError", "ExprCompileError", "Expr", "compile_expr", "KINDS"]


class _NoValue:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:  # a condition on a missing value is false
        return False


NO_VALUE: Any = _NoValue()
KINDS = ("bool", "number", "string", "list", "dyn")


@dataclass(frozen=True)
class ExprError:
    offset: int  # 0-based character (code point) offset into the expression text
    message: str


class ExprCompileError(Exception):
    def __init__(self, text: str, errors: list[ExprError]):
        self.text = text
        self.errors = errors
        super().__init__("; ".join(f"at {e.offset}: {e.message}" for e in errors))


# --- the CEL environment -----------------------------------------------------

T = cel.Type


def _sig(*types_: str) -> list[dict]:
    return [{"type_name": t[1:], "is_type_param": True} if t.startswith("~") else _tn(t) for t in types_]


def _tn(t: str) -> dict:
    # "list(~A)" / "map(~A,~B)" / plain names, in the env-config YAML shape
    m = re.fullmatch(r"(list|map)\((.*)\)", t)
    if not m:
        return {"type_name": t}
    return {"type_name": m.group(1), "params": _sig(*[p.strip() for p in m.group(2).split(",")])}


def _yaml_type(d: dict) -> str:
    parts = [f"type_name: {d['type_name']}"]
    if d.get("is_type_param"):
        parts.append("is_type_param: true")
    if "params" in d:
        parts.append("params: [" + ", ".join(_yaml_type(p) for p in d["params"]) + "]")
    return "{" + ", ".join(parts) + "}"


_NUMS = ("int", "uint", "double")
# The standard overloads we keep (their implementations are cel-cpp's own:
# a declaration with no Python function binds to the runtime's builtin).
_ARITH_STD = {
    "_+_": [
        ("add_int64", "int", "int", "int"),
        ("add_uint64", "uint", "uint", "uint"),
        ("add_double", "double", "double", "double"),
        ("add_string", "string", "string", "string"),
        ("add_bytes", "bytes", "bytes", "bytes"),
        ("add_list", "list(~A)", "list(~A)", "list(~A)"),
        ("add_timestamp_duration", "timestamp", "duration", "timestamp"),
        ("add_duration_timestamp", "duration", "timestamp", "timestamp"),
        ("add_duration_duration", "duration", "duration", "duration"),
    ],
    "_-_": [
        ("subtract_int64", "int", "int", "int"),
        ("subtract_uint64", "uint", "uint", "uint"),
        ("subtract_double", "double", "double", "double"),
        ("subtract_timestamp_timestamp", "timestamp", "timestamp", "duration"),
        ("subtract_timestamp_duration", "timestamp", "duration", "timestamp"),
        ("subtract_duration_duration", "duration", "duration", "duration"),
    ],
    "_*_": [
        ("multiply_int64", "int", "int", "int"),
        ("multiply_uint64", "uint", "uint", "uint"),
        ("multiply_double", "double", "double", "double"),
    ],
    "_/_": [
        ("divide_int64", "int", "int", "int"),
        ("divide_uint64", "uint", "uint", "uint"),
        ("divide_double", "double", "double", "double"),
    ],
}
_ARITH_PY = {"_+_": operator.add, "_-_": operator.sub, "_*_": operator.mul}


def _div(a: Any, b: Any) -> float:
    if not b:
        raise ZeroDivisionError("division by zero")
    return a / b


_ORDERED = ("int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration")
_CMP = {"_<_": "less", "_<=_": "less_equals", "_>_": "greater", "_>=_": "greater_equals"}


def _env_config() -> tuple[str, dict]:
    """The env-config YAML and the Python implementations of the mixed overloads."""
    funcs: dict[str, list[tuple[str, list[str], str]]] = {}
    impls: dict = {}
    for name, std in _ARITH_STD.items():
        ovs = [(oid, [a, b], r) for oid, a, b, r in std]
        fn = _ARITH_PY.get(name, _div)
        for a, b in (("int", "double"), ("double", "int")):
            oid = (
                f"anomalyd_{name.strip('_')}_{a}_{b}".replace("+", "add")
                .replace("-", "sub")
                .replace("*", "mul")
                .replace("/", "div")
            )
            ovs.append((oid, [a, b], "double"))
            impls[oid] = fn
        funcs[name] = ovs
    for name, base in _CMP.items():
        ovs = [(f"{base}_{t}", [t, t], "bool") for t in _ORDERED]
        # cross-numeric: cel-cpp's runtime compares these numerically already
        ovs += [(f"{base}_{a}_{b}", [a, b], "bool") for a in _NUMS for b in _NUMS if a != b]
        funcs[name] = ovs
    for name, base in (("_==_", "equals"), ("_!=_", "not_equals")):
        ovs = [(base, ["~A", "~A"], "bool")]
        ovs += [(f"{base}_{a}_{b}", [a, b], "bool") for a in _NUMS for b in _NUMS if a != b]
        funcs[name] = ovs
    funcs["@in"] = [("in_list", ["~A", "list(~A)"], "bool"), ("in_map", ["~A", "map(~A, ~B)"], "bool")] + [
        (f"in_list_{a}_{b}", [a, f"list({b})"], "bool") for a in _NUMS for b in _NUMS if a != b
    ]
    lines = ["stdlib:", "  exclude_functions:"]
    lines += [f'    - name: "{n}"' for n in funcs]
    lines.append("functions:")
    for n, ovs in funcs.items():
        lines.append(f'  - name: "{n}"')
        lines.append("    overloads:")
        for oid, args, ret in ovs:
            a = ", ".join(_yaml_type(d) for d in _sig(*args))
            lines.append(f"      - {{id: {oid}, args: [{a}], return: {_yaml_type(_sig(ret)[0])}}}")
    return "\n".join(lines) + "\n", impls


_CONFIG_YAML, _IMPLS = _env_config()


def declared_types(source: str) -> dict[str, Any]:
    """{name: cel.Type} for a source's fields (`attrs` is map(string, dyn), `ts` int)."""
    out: dict[str, Any] = {"attrs": T.Map(T.STRING, T.DYN), "ts": T.INT}
    for name, (kind, _choices) in field_kinds(source).items():
        if name in out:
            continue
        if kind == "list":
            out[name] = T.List(T.STRING)
        elif kind == "number":
            # Every number field is a double (ints converted in the
            # activation): mixed int/double arithmetic then runs in cel-cpp,
            # not in the Python overloads, which leak in cel-expr-python 0.1.3
            # (notes/expressions.md). Only literals still mix.
            out[name] = T.DOUBLE
        elif kind == "string":
            out[name] = T.STRING
        else:  # not expected in events.py today: leave it to run time
            out[name] = T.DYN
    return out


def _new_env(variables: dict[str, Any]) -> Any:
    return cel.NewEnv(config=cel.NewEnvConfigFromYaml(_CONFIG_YAML), variables=variables, function_impls=_IMPLS)


@lru_cache(maxsize=None)
def _env(source: str, without: str | None = None) -> Any:
    decl = declared_types(source)
    if without is not None:
        decl = {k: v for k, v in decl.items() if k != without}
    return _new_env(decl)


# --- load-time errors ----------------------------------------------------------

_ERR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
_UNDECLARED = re.compile(r"undeclared reference to '([^']*)'")


def _offset(text: str, line: int, col: int) -> int:
    """cel-cpp's 1-based line and code-point column -> 0-based offset in `text`."""
    start = 0
    for _ in range(line - 1):
        nl = text.find("\n", start)
        if nl < 0:
            break
        start = nl + 1
    return min(start + max(col - 1, 0), len(text))


def _errors(text: str, message: str, names: list[str]) -> list[ExprError]:
    out = []
    for m in _ERR.finditer(message):
        msg = m.group(3).rstrip()
        off = _offset(text, int(m.group(1)), int(m.group(2)))
        u = _UNDECLARED.search(msg)
        if u:
            # `a.b` is first looked up as a qualified name and reported at the dot
            whole = u.group(1)
            at = text.rfind(whole.split(".")[0], 0, off + 1)
            off = at if at >= 0 else off
            name = whole.split(".")[0]
            msg = f"unknown field {name!r} for this source"
            near = difflib.get_close_matches(name, names, n=1)
            if near:
                msg += f" (did you mean {near[0]!r}?)"
        elif msg.startswith("Syntax error: "):
            msg = "syntax error: " + msg[len("Syntax error: ") :]
        out.append(ExprError(off, msg))
    if not out:  # a message we cannot place: keep it whole, at the start
        out.append(ExprError(0, message.strip()))
    return out


_KIND_OF = {"bool": "bool", "int": "number", "uint": "number", "double": "number", "string": "string"}


def _kind(t: Any) -> str:
    name = t.name().lower()
    if name.startswith("list"):
        return "list"
    return _KIND_OF.get(name, "dyn")


# --- the compiled expression ------------------------------------------------------

_MISSING_MARKS = ("No value with name", "Key not found in map", "NOT_FOUND")
_EMPTY: dict = {}
_ERROR = T.ERROR


def _as_double(name: str, v: Any) -> Any:
    """Numbers reach CEL as doubles (see declared_types); `ts` stays an int."""
    t = type(v)
    if t is int:
        return v if name == "ts" else float(v)
    if t is dict:  # attrs
        return {k: float(x) if type(x) is int else x for k, x in v.items()}
    return v


class Expr:
    """A compiled expression; call it on an event model."""

    __slots__ = ("text", "source", "kind", "fields", "errors", "missing", "_program", "_get", "_names", "_call")

    def __init__(self, source: str, text: str, program: Any, kind: str, fields: frozenset[str]):
        self.text = text
        self.source = source
        self.kind = kind
        self.fields = fields
        self.errors = 0
        self.missing = 0
        self._program = program
        names = tuple(sorted(fields))
        self._names = names
        self._get: Any = operator.attrgetter(*names) if names else None

    def __repr__(self) -> str:
        return f"Expr({self.source!r}, {self.text!r}, kind={self.kind!r})"

    def __reduce__(self):
        # cel-cpp's compiled program cannot be pickled: pickle and deepcopy
        # compile the text again (the copy's counters start at 0).
        return compile_expr, (self.source, self.text)

    def _activation(self, ev: Any) -> dict:
        names = self._names
        if not names:
            return _EMPTY
        if len(names) == 1:
            v = self._get(ev)
            name = names[0]
            if v is None:
                return {"attrs": _EMPTY} if name == "attrs" else _EMPTY
            return {name: _as_double(name, v)}
        data = {}
        for name, v in zip(names, self._get(ev), strict=True):
            if v is not None:
                data[name] = _as_double(name, v)
            elif name == "attrs":
                data[name] = _EMPTY
        return data

    def __call__(self, ev: Any) -> Any:
        try:
            v = self._program.eval(data=self._activation(ev))
            r = v.value()
            t = type(r)
            if t is bool or t is int:
                return r
            if t is float:
                if r - r == 0.0:  # finite
                    return r
                self.errors += 1
                return NO_VALUE
            if v.type() == _ERROR:
                if any(m in r for m in _MISSING_MARKS):
                    self.missing += 1
                else:
                    self.errors += 1
                return NO_VALUE
            if t is str:
                return r
            return v.plain_value()
        except Exception:  # never raise on an event (a value cel-cpp cannot convert, ...)
            self.errors += 1
            return NO_VALUE


def _fields_read(source: str, text: str) -> frozenset[str]:
    """The top-level fields the expression reads: each declared name the text
    mentions is taken away from the environment in turn, and the checker says
    whether the expression then has an undeclared reference to it (a
    comprehension variable of the same name does not count)."""
    out = set()
    for name in declared_types(source):
        if name not in text:
            continue
        try:
            _env(source, name).compile(text)
        except RuntimeError as exc:
            msg = str(exc)
            if f"undeclared reference to '{name}'" in msg or f"undeclared reference to '{name}." in msg:
                out.add(name)
    return frozenset(out)


def compile_expr(source: str, text: str) -> Expr:
    """Parse and type-check `text` for `source`; raises ExprCompileError with every error."""
    if source not in EVENT_MODELS:
        raise ExprCompileError(text, [ExprError(0, f"unknown source {source!r}")])
    if not isinstance(text, str) or not text.strip():
        raise ExprCompileError(str(text), [ExprError(0, "empty expression")])
    names = sorted(declared_types(source))
    try:
        program = _env(source).compile(text)
    except RuntimeError as exc:
        raise ExprCompileError(text, _errors(text, str(exc), names)) from None
    return Expr(source, text, program, _kind(program.return_type()), _fields_read(source, text))
