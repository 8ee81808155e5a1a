"""Load a rules directory: safe YAML, whole-set validation, FILE:LINE:COL errors.

YAML is composed (never constructed by PyYAML's object constructor) into
nodes, and we build the Python values ourselves while recording each key's
and value's position. Any tag outside YAML's plain types is an error, aliases
are followed with a node budget (no "billion laughs"), and duplicate keys are
refused instead of silently overwritten.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ValidationError

from ..events import EVENT_MODELS, field_kinds
from ..types import DETAILS, RULE_TYPES
from ..types.correlate import CorrelateRule, Tagged, find_cycle, inputs_of
from ..types.sequence import Match, SequenceRule, Side
from .model import Breaker, Condition, RuleCore

MAX_NODES = 200_000  # per file, counting alias expansions
MAX_FILE_BYTES = 8 * 1024 * 1024
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


@dataclass(frozen=True, order=True)
class RuleError:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class RuleLoadError(Exception):
    """A rules directory that failed to load; `errors` holds every problem."""

    def __init__(self, errors: list[RuleError]):
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass
class LoadedRule:
    rule: RuleCore
    file: str
    line: int
    col: int


@dataclass
class RuleSet:
    rules: list[LoadedRule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for lr in sorted(self.rules, key=lambda r: r.rule.id):
            h.update(f"{lr.rule.id}={lr.rule.version};".encode())
        return h.hexdigest()[:16]

    def enabled(self) -> list[RuleCore]:
        return [lr.rule for lr in self.rules if lr.rule.enabled]


class _Positions(dict[tuple, tuple[tuple[int, int], tuple[int, int]]]):
    """path tuple -> (key (line, col), value (line, col)), 1-based."""


class _Budget(Exception):
    pass


def _pos(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _build(
    node: yaml.Node,
    path: tuple,
    pos: _Positions,
    ctor: yaml.SafeLoader,
    errs: list,
    fname: str,
    budget: list[int],
    kind: str = "rule files",
    tags: frozenset | set = _PLAIN_TAGS,
) -> Any:
    budget[0] += 1
    if budget[0] > MAX_NODES:
        raise _Budget()
    if node.tag not in tags:
        line, col = _pos(node.start_mark)
        errs.append(RuleError(fname, line, col, f"YAML tag {node.tag!r} is not allowed in {kind} (plain values only)"))
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                line, col = _pos(knode.start_mark)
                errs.append(RuleError(fname, line, col, "mapping keys must be plain scalars"))
                continue
            key = ctor.construct_object(knode)
            if key in out:
                line, col = _pos(knode.start_mark)
                errs.append(RuleError(fname, line, col, f"duplicate key {key!r}"))
                continue
            pos[path + (key,)] = (_pos(knode.start_mark), _pos(vnode.start_mark))
            out[key] = _build(vnode, path + (key,), pos, ctor, errs, fname, budget, kind, tags)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            p = _pos(item.start_mark)
            pos[path + (i,)] = (p, p)
            items.append(_build(item, path + (i,), pos, ctor, errs, fname, budget, kind, tags))
        return items
    try:
        return ctor.construct_object(node)
    except (yaml.YAMLError, ValueError) as exc:
        line, col = _pos(node.start_mark)
        errs.append(RuleError(fname, line, col, f"bad value: {exc}"))
        return None


def _model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model whose keys live at `loc` inside a rule of class `cls`."""
    model: type[BaseModel] | None = cls
    for part in loc:
        if isinstance(part, int):
            continue
        if part in ("where", "numerator"):
            model = Condition
        elif part == "breaker":
            model = Breaker
        elif part in ("first", "then") and model is SequenceRule:
            model = Side
        elif part == "match" and model is SequenceRule:
            model = Match
        elif part == "rules" and model is CorrelateRule:
            model = Tagged
        else:
            return model
    return model


def _explain(
    cls: type[RuleCore], err: dict, rule_path: tuple, pos: _Positions, rule_pos: tuple[int, int], raw: dict
) -> tuple[tuple[int, int], str]:
    loc = tuple(err["loc"])
    if (
        err["type"] == "value_error"
        and len(loc) == 2
        and loc[0] in ("where", "numerator")
        and rule_path + loc + ("value",) in pos
    ):
        loc = loc + ("value",)  # a condition's op/value mismatch: point at the value
    # Union members add names such as 'float' or 'list[...]' to loc: keep the
    # longest prefix that is a real place in the file.
    real = loc
    while real and rule_path + real not in pos:
        real = real[:-1]
    where = ".".join(str(p) for p in real) or "rule"
    kind = err["type"]
    if kind == "extra_forbidden":
        key = loc[-1]
        model = _model_at(cls, loc[:-1])
        allowed = sorted(info.alias or name for name, info in model.model_fields.items()) if model else []
        if model is cls:
            allowed.append("type")
        hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        text = f"unknown key {key!r}" + (
            f"; did you mean {hint[0]!r}?" if hint else f" (allowed: {', '.join(allowed)})"
        )
        return pos[rule_path + loc][0], text
    if kind == "missing":
        parent = loc[:-1]
        at = pos[rule_path + parent][1] if parent and rule_path + parent in pos else rule_pos
        return at, f"missing required key {loc[-1]!r}" + (f" in {'.'.join(map(str, parent))}" if parent else "")
    at = pos[rule_path + real][1] if real else rule_pos
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and real and real[-1] == "id":
        msg = "rule id must match [a-z0-9_-]+"
    elif kind == "string_pattern_mismatch":
        msg = f"bad duration {err['input']!r}: use a whole number with ms, s, m, h or d (e.g. 30s, 10m, 1h30m)"
    elif kind == "literal_error" and isinstance(err.get("input"), str):  # a misspelt choice: say which was meant
        choices = [str(c) for c in err.get("ctx", {}).get("expected_values", [])] or __import__("re").findall(
            r"'([^']*)'", str(err.get("ctx", {}).get("expected", ""))
        )
        given = err["input"]
        hint = (
            [c for c in choices if c.lower() == given.lower()]
            or [c for c in choices if sorted(c) == sorted(given)]
            or difflib.get_close_matches(given, choices, n=1)
        )
        if hint:
            msg += f"; got {given!r}, did you mean {hint[0]!r}?"
    return at, f"{where}: {msg}"


def _known_field(source: str, name: Any) -> bool:
    if not isinstance(name, str):
        return False
    if name.startswith("attrs.") and len(name) > 6:
        return True
    return name in field_kinds(source)


def _field_error(source: str, name: str) -> str:
    known = sorted(field_kinds(source))
    hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"unknown field {name!r} for source {source}" + (
        f"; did you mean {hint[0]!r}?" if hint else f" (fields: {', '.join(known)}, or attrs.NAME)"
    )


_TEMPLATE_COMMON = {"value", "threshold", "rule_id", "severity", "source", "window", "count", "group", "op", "where"}
_NUMBER_OPS = ("<", "<=", ">", ">=")


def _expr_place(fname: str, line: int, col: int, offset: int) -> tuple[int, int]:
    """FILE:LINE:COL of a character of an expression whose YAML value starts
    at (line, col): past the opening quote of a quoted scalar."""
    try:
        text = Path(fname).read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, IndexError):
        return line, col
    if text[col - 1 : col] in ("'", '"'):
        col += 1
    return line, col + offset


def _semantic(raw: dict, src: Any, rp: tuple, pos: _Positions, fname: str, rule_pos: tuple) -> list[RuleError]:
    """Checks pydantic cannot make alone: field names per source, operators on
    the field's type, breaker scope, message placeholders. Works on the raw
    mapping, so these errors are reported even when the rule has others."""
    out: list[RuleError] = []
    rtype = raw.get("type") if isinstance(raw.get("type"), str) else None
    group_by: list = raw["group_by"] if isinstance(raw.get("group_by"), list) else []
    sides = {}  # a sequence's two ends: name -> (its mapping, its source)
    if rtype == "sequence":
        for name in ("first", "then"):
            side = raw.get(name)
            if isinstance(side, dict) and isinstance(side.get("source"), str) and side["source"] in EVENT_MODELS:
                sides[name] = (side, side["source"])
        src = sides["first"][1] if "first" in sides else None  # group_by names the first event's fields
    if not isinstance(src, str) or src not in EVENT_MODELS:  # pydantic reports a bad source
        _common_checks(raw, rtype, group_by, rp, pos, fname, rule_pos, out)
        return out
    kinds = field_kinds(src)

    def err(path: tuple, msg: str, key: bool = False) -> None:
        p = pos.get(rp + path)
        line, col = (p[0] if key else p[1]) if p else rule_pos
        out.append(RuleError(fname, line, col, msg))

    def check_field(path: tuple, name: Any, src: str = src) -> bool:
        if not isinstance(name, str):
            return False  # pydantic reports the type
        if not _known_field(src, name):
            err(path, _field_error(src, name))
            return False
        return True

    def check_expr(path: tuple, text: Any, want: str = "any", src: str = src) -> None:
        """An expression compiles against the source's fields, and gives what
        its place needs: true/false (a condition alone) or a number."""
        if not isinstance(text, str):
            return  # pydantic reports the type
        from .expr import ExprCompileError, compile_expr

        p = pos.get(rp + path)
        line, col = p[1] if p else rule_pos
        try:
            e = compile_expr(src, text)
        except ExprCompileError as exc:
            for x in exc.errors:
                out.append(RuleError(fname, *_expr_place(fname, line, col, x.offset), f"expr: {x.message}"))
            return
        if want == "bool" and e.kind not in ("bool", "dyn"):
            err(path, f"expr {text!r} gives a {e.kind}; a condition alone needs true or false (or add op and value)")
        elif want == "number" and e.kind not in ("number", "dyn"):
            err(path, f"expr {text!r} gives a {e.kind}; a number is needed here")

    def check_conditions(name: str, within: dict = raw, at: tuple = (), src: str = src) -> None:
        conds = within.get(name)
        if not isinstance(conds, list):
            return
        kinds = field_kinds(src)
        for i, c in enumerate(conds):
            if isinstance(c, dict) and "expr" in c:
                op = c.get("op")
                check_expr(
                    at + (name, i, "expr"),
                    c["expr"],
                    "bool" if op is None else "number" if op in _NUMBER_OPS else "any",
                    src,
                )
                continue
            if not isinstance(c, dict) or not check_field(at + (name, i, "field"), c.get("field"), src):
                continue
            f, op, v = c["field"], c.get("op"), c.get("value")
            kind, choices = kinds.get(f, ("any", None))
            if op in ("<", "<=", ">", ">=") and kind != "number" and not f.startswith("attrs."):
                err(at + (name, i, "op"), f"op {op!r} compares numbers but {f} is a {kind}")
            if choices and op != "exists":
                for val in v if isinstance(v, list) else [v]:
                    if isinstance(val, str) and val not in choices:
                        err(at + (name, i, "value"), f"{f} is one of {', '.join(choices)}; {val!r} never matches")

    for name, (side, side_src) in sides.items():
        check_field((name, "key"), side.get("key"), side_src)
        check_conditions("where", side, (name,), side_src)
    match = raw.get("match")
    if rtype == "sequence" and isinstance(match, dict):
        for name in ("first", "then"):
            if name in sides and name in match:
                check_expr(("match", name), match[name], "number", sides[name][1])

    for i, g in enumerate(group_by):
        if check_field(("group_by", i), g) and kinds.get(g, ("any", None))[0] == "list":
            err(("group_by", i), f"cannot group by {g}: it is a list")
    if len({g for g in group_by if isinstance(g, str)}) != len(group_by):
        err(("group_by",), "group_by lists a field twice")
    check_conditions("where")
    if rtype == "ratio":
        check_conditions("numerator")
    if rtype in ("threshold", "change") and check_field(("field",), raw.get("field")):
        f = raw["field"]
        kind = kinds.get(f, ("number", None))[0]
        if rtype == "change" and kind != "number" and not f.startswith("attrs."):
            err(("field",), f"change needs a numeric field; {f} is a {kind}")
        if rtype == "threshold" and raw.get("op") in ("<", "<=", ">", ">="):
            v = raw.get("value")
            if isinstance(v, (bool, str)) or (kind != "number" and not f.startswith("attrs.")):
                err(("value",), f"op {raw['op']!r} needs a numeric field and a number value")
    fn = raw.get("fn")
    if rtype in ("threshold", "change", "aggregate", "surge") and "expr" in raw:
        numeric = (
            rtype == "change"
            or (rtype == "threshold" and raw.get("op") in _NUMBER_OPS)
            or (rtype in ("aggregate", "surge") and fn != "distinct")
        )
        check_expr(("expr",), raw["expr"], "number" if numeric else "any")
    if rtype in ("aggregate", "surge") and check_field(("field",), raw.get("field")):
        f = raw["field"]
        kind = kinds.get(f, ("number", None))[0]
        if fn != "distinct" and kind != "number" and not f.startswith("attrs."):
            err(("field",), f"fn {fn or 'count'} needs a numeric field; {f} is a {kind}")
        elif kind == "list":
            err(("field",), f"fn distinct counts scalar values; {f} is a list")
    _common_checks(raw, rtype, group_by, rp, pos, fname, rule_pos, out)
    return out


def _common_checks(
    raw: dict,
    rtype: str | None,
    group_by: list,
    rp: tuple,
    pos: _Positions,
    fname: str,
    rule_pos: tuple,
    out: list[RuleError],
) -> None:
    """Breaker scope and message placeholders: for every rule type."""

    def err(path: tuple, msg: str) -> None:
        p = pos.get(rp + path)
        line, col = p[1] if p else rule_pos
        out.append(RuleError(fname, line, col, msg))

    breaker = raw.get("breaker")
    if isinstance(breaker, dict) and isinstance(breaker.get("scope"), list):
        for i, sc in enumerate(breaker["scope"]):
            if sc not in group_by:
                err(("breaker", "scope", i), f"breaker scope field {sc!r} is not in group_by {group_by}")
    for key in ("message", "resolved_message"):
        msg = raw.get(key)
        if not isinstance(msg, str) or rtype not in DETAILS:
            continue
        allowed = {g for g in group_by if isinstance(g, str)} | _TEMPLATE_COMMON | DETAILS[rtype]
        try:
            names = [n for _, n, _, _ in string.Formatter().parse(msg) if n is not None]
        except ValueError as exc:
            err((key,), f"{key} template: {exc}")
            names = []
        for n in names:
            base = n.split(".")[0].split("[")[0]
            if base not in allowed:
                err((key,), f"{key} uses {{{n}}}; available: {', '.join(sorted(allowed))}")


def _syntax_error(text: str, exc: yaml.MarkedYAMLError, display: str) -> RuleError:
    """A YAML syntax error at the place to fix: an unclosed `[`, `{` or quote
    is named where it opens (PyYAML notices only at the end of the file or on
    a later line), and a place past the end of the file is its last line."""
    mark = exc.problem_mark or exc.context_mark
    line, col = _pos(mark) if mark else (1, 1)
    problem = str(exc.problem or exc.context).replace("'<stream end>'", "the end of the file")
    problem = problem.replace("unexpected end of stream", "the end of the file")
    opener = None  # the innermost flow collection or quote still open where the error was found
    if exc.context_mark is not None and (exc.context or "").startswith("while scanning a quoted scalar"):
        opener = _pos(exc.context_mark)
    else:
        stack: list[tuple[int, int]] = []
        try:
            for tok in yaml.scan(text, Loader=yaml.SafeLoader):
                if isinstance(tok, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken)):
                    stack.append(_pos(tok.start_mark))
                elif isinstance(tok, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)) and stack:
                    stack.pop()
        except yaml.YAMLError:
            pass
        opener = stack[-1] if stack else None
    if opener is not None and opener[0] < line:
        lines = text.splitlines()
        char = (
            lines[opener[0] - 1][opener[1] - 1]
            if opener[0] <= len(lines) and opener[1] <= len(lines[opener[0] - 1])
            else "?"
        )
        return RuleError(
            display, *opener, f"YAML syntax: this {char!r} is never closed (at line {line}, column {col}: {problem})"
        )
    if "<block" in problem:
        problem += " (check the indentation of this line against the lines above)"
    elif "'\\t'" in problem:
        problem = "a tab cannot indent YAML: use spaces"
    lines = text.splitlines()
    if lines and line > len(lines):
        line, col = len(lines), len(lines[-1]) + 1
    return RuleError(display, line, col, f"YAML syntax: {problem}")


def compose_file(
    path: Path, display: str, errors: list[RuleError], kind: str = "rule files", timestamps: bool = False
) -> tuple[Any, _Positions, tuple[int, int]] | None:
    """Read and compose one YAML file into plain values, each key's and
    value's position recorded in the returned `_Positions` (path tuple ->
    (key (line, col), value (line, col))). Problems are appended to `errors`;
    None when nothing usable was read. Shared by rule files and rule tests."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        errors.append(RuleError(display, 1, 1, f"cannot read: {exc.strerror}"))
        return None
    if len(data) > MAX_FILE_BYTES:
        errors.append(RuleError(display, 1, 1, f"file larger than {MAX_FILE_BYTES} bytes"))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        errors.append(RuleError(display, 1, 1, f"not UTF-8 ({exc.reason} at byte {exc.start})"))
        return None
    try:
        loader = yaml.SafeLoader(text)  # checks characters at once: may raise ReaderError
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        errors.append(
            RuleError(
                display,
                line,
                col,
                f"character U+{ord(exc.character) if isinstance(exc.character, str) else exc.character:04X} is not allowed in YAML",
            )
        )
        return None
    try:
        node = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        errors.append(
            RuleError(
                display,
                1,
                1,
                f"character U+{ord(exc.character) if isinstance(exc.character, str) else exc.character:04X} is not allowed in YAML",
            )
        )
        return None
    except yaml.MarkedYAMLError as exc:
        errors.append(_syntax_error(text, exc, display))
        return None
    except yaml.YAMLError as exc:
        errors.append(RuleError(display, 1, 1, f"YAML: {exc}"))
        return None
    finally:
        loader.dispose()
    if node is None:
        return None, _Positions(), (1, 1)
    pos = _Positions()
    try:
        tags = _PLAIN_TAGS | {"tag:yaml.org,2002:timestamp"} if timestamps else _PLAIN_TAGS
        doc = _build(node, (), pos, yaml.SafeLoader(""), errors, display, [0], kind, tags)
    except _Budget:
        line, col = _pos(node.start_mark)
        errors.append(RuleError(display, line, col, f"document expands to more than {MAX_NODES} nodes (alias bomb?)"))
        return None
    except RecursionError:
        errors.append(RuleError(display, 1, 1, "document nested too deeply"))
        return None
    return doc, pos, _pos(node.start_mark)


def did_you_mean(word: Any, choices: list[str]) -> str:
    """'; did you mean 'x'?' for a near miss, else ' (allowed: ...)'."""
    hint = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"; did you mean {hint[0]!r}?" if hint else f" (allowed: {', '.join(choices)})"


Place = Callable[[tuple], tuple[int, int]]  # a path inside a rule -> its value's (line, col)


def _placer(pos: _Positions, rp: tuple, rule_pos: tuple[int, int]) -> Place:
    def place(path: tuple) -> tuple[int, int]:
        p = pos.get(rp + path)
        return p[1] if p else rule_pos

    return place


def _load_file(
    path: Path, display: str, errors: list[RuleError]
) -> list[tuple[str, RuleCore | None, tuple[int, int], Place]]:
    file_errs: list[RuleError] = []
    composed = compose_file(path, display, file_errs)
    if composed is None:
        errors.extend(file_errs)
        return []
    doc, pos, top = composed
    if doc is None:
        errors.append(RuleError(display, 1, 1, "empty file: expected a top-level 'rules:' list"))
        return []
    errors.extend(file_errs)
    bad_places = {(e.line, e.col) for e in file_errs}
    if not isinstance(doc, dict):
        errors.append(RuleError(display, *top, "expected a mapping with a top-level 'rules:' list"))
        return []
    for k in doc:
        if k != "rules":
            hint = " ; did you mean 'rules'?" if difflib.get_close_matches(str(k), ["rules"]) else ""
            errors.append(RuleError(display, *pos[(k,)][0], f"unknown top-level key {k!r}{hint}".replace(" ;", ";")))
    if "rules" not in doc:
        errors.append(RuleError(display, *top, "missing top-level 'rules:' list"))
        return []
    if doc["rules"] is None:  # `rules:` with every rule commented out: a file of no rules
        return []
    if not isinstance(doc["rules"], list):
        errors.append(RuleError(display, *pos[("rules",)][1], "'rules' must be a list of rules"))
        return []
    out = []
    for i, raw in enumerate(doc["rules"]):
        rp = ("rules", i)
        rule_pos = pos[rp][1]
        if not isinstance(raw, dict):
            errors.append(RuleError(display, *rule_pos, "each rule must be a mapping"))
            continue
        rtype = raw.get("type")
        if not isinstance(rtype, str) or rtype not in RULE_TYPES:
            at = pos[rp + ("type",)][1] if "type" in raw else rule_pos
            if rtype is None:
                msg = f"missing required key 'type' (one of {', '.join(RULE_TYPES)})"
            else:
                near = difflib.get_close_matches(str(rtype), list(RULE_TYPES), n=1)
                msg = f"unknown rule type {rtype!r}" + (
                    f"; did you mean {near[0]!r}?" if near else f" (one of {', '.join(RULE_TYPES)})"
                )
            errors.append(RuleError(display, *at, msg))
            continue
        cls = RULE_TYPES[rtype]
        sem = _semantic(raw, raw.get("source"), rp, pos, display, rule_pos)
        errors.extend(sem)
        taken = {(e.line, e.col) for e in sem} | bad_places
        rule = None
        try:
            rule = cls.model_validate(raw)
        except ValidationError as exc:
            errs = exc.errors(include_url=False)
            # A misspelled key also shows up as a "missing" one: report it once.
            typos = {
                (tuple(e["loc"][:-1]), m)
                for e in errs
                if e["type"] == "extra_forbidden"
                for m in difflib.get_close_matches(
                    str(e["loc"][-1]), [str(x["loc"][-1]) for x in errs if x["type"] == "missing"], n=1, cutoff=0.6
                )
            }
            for e in errs:
                if e["type"] == "missing" and (tuple(e["loc"][:-1]), str(e["loc"][-1])) in typos:
                    continue
                (line, col), msg = _explain(cls, dict(e), rp, pos, rule_pos, raw)
                if (line, col) not in taken:  # one message per place (unions repeat)
                    taken.add((line, col))
                    errors.append(RuleError(display, line, col, msg))
        rid = raw.get("id")
        if isinstance(rid, str):
            id_pos = pos.get(rp + ("id",), (rule_pos, rule_pos))[1]
            out.append((rid, rule if not (sem or file_errs) else None, id_pos, _placer(pos, rp, rule_pos)))
    return out


def _across_rules(ruleset: RuleSet, places: dict[str, Place], ids: set[str]) -> list[RuleError]:
    """Checks of rules over rules: a correlate rule's inputs exist, may be
    read (no shadow input for a live rule), carry its group_by fields, and
    no chain of correlate rules reads itself."""
    out: list[RuleError] = []
    rules = {lr.rule.id: lr for lr in ruleset.rules}
    every = [lr.rule for lr in ruleset.rules]
    for lr in ruleset.rules:
        r = lr.rule
        if not isinstance(r, CorrelateRule):
            continue
        place = places[r.id]
        inputs = inputs_of(r, every)
        if isinstance(r.rules, list):
            for i, rid in enumerate(r.rules):
                at = place(("rules", i))
                if rid == r.id:
                    out.append(RuleError(lr.file, *at, "a correlate rule cannot read its own alerts"))
                elif rid not in rules:
                    if rid not in ids:  # a rule with errors of its own is reported there
                        out.append(RuleError(lr.file, *at, f"no rule {rid!r}" + did_you_mean(rid, sorted(rules))))
                elif rules[rid].rule.mode == "shadow" and r.mode == "live":
                    out.append(
                        RuleError(lr.file, *at, f"{rid!r} is a shadow rule: its alerts are never inputs of a live rule")
                    )
        elif not inputs:
            out.append(
                RuleError(
                    lr.file,
                    *place(("rules", "tags")),
                    f"no {'' if r.mode == 'shadow' else 'live '}rule carries the tags {r.rules.tags}",
                )
            )
        for rid in inputs:
            missing = [g for g in r.group_by if g not in rules[rid].rule.group_by]
            if missing:
                out.append(
                    RuleError(
                        lr.file,
                        *place(("group_by",)),
                        f"group_by {missing} is not in the alert groups of "
                        f"{rid!r} (group_by {rules[rid].rule.group_by})",
                    )
                )
    cycle = find_cycle(every)
    if cycle:
        lr = rules[cycle[0]]
        out.append(
            RuleError(
                lr.file,
                *places[cycle[0]](("rules",)),
                f"correlate rules read each other in a cycle: {' -> '.join(cycle)}",
            )
        )
    return out


def rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_rules(directory: str | Path) -> RuleSet:
    """Load every *.yaml in `directory`. Raises RuleLoadError listing every error."""
    d = Path(directory)
    if not d.is_dir():
        files = [d] if d.is_file() else []
        if not files:
            raise RuleLoadError([RuleError(str(d), 1, 1, "no such rules directory or file")])
    else:
        files = rule_files(d)
    errors: list[RuleError] = []
    ruleset = RuleSet(files=[str(f) for f in files])
    first: dict[str, str] = {}
    places: dict[str, Place] = {}
    ids: set[str] = set()
    for f in files:
        display = str(f)
        for rid, rule, (line, col), place in _load_file(f, display, errors):
            if rid in first:
                errors.append(
                    RuleError(display, line, col, f"duplicate rule id {rid!r} (first defined at {first[rid]})")
                )
                continue
            first[rid] = f"{display}:{line}:{col}"
            ids.add(rid)
            if rule is not None:
                ruleset.rules.append(LoadedRule(rule, display, line, col))
                places[rid] = place
    errors += _across_rules(ruleset, places, ids)
    if errors:
        raise RuleLoadError(errors)
    return ruleset


def source_fields(source: str) -> list[str]:
    return sorted(EVENT_MODELS[source].model_fields)
