"""Turn raw records into validated events, or into dead-letter records.

The fast path validates a whole replay line (envelope and event) in one
msgspec call, into the Structs of structs.py. Only a record that fails takes
the slow path, which works out a precise one-line reason with the pydantic
models of events.py (the reasons users read stay those of the models).
"""

from __future__ import annotations

import json
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from .events import EVENT_MODELS
from .records import DeadLetter
from .structs import EVENT_STRUCTS, LINE_DECODER, TOPIC_OF, VALUE_DECODERS, EventStruct
from .timeutil import parse_ts

MAX_ORIGINAL_CHARS = 64 * 1024  # a dead letter keeps at most this much of the text


class Rejected(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


_VALUE_ADAPTERS = {t: TypeAdapter(m) for t, m in EVENT_MODELS.items()}
# What the fast path raises for a record it refuses (msgspec's depth limit
# surfaces as RecursionError).
Invalid = (msgspec.MsgspecError, RecursionError)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _loads(text: str | bytes) -> Any:
    try:
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise Rejected("not_utf8", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise Rejected("invalid_json", "invalid JSON: nested too deeply") from None
    except ValueError as exc:
        raise Rejected("invalid_json", f"invalid JSON: {exc}") from None


_BRANCH = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|constrained-\w+|function-\w+\[.*\]|literal\[.*\])$")


def _given(v: Any) -> str:
    """What a record gave, as JSON has it, cut short: `"12"`, `true`, `[1]`."""
    try:
        text = json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


_PLAIN_KINDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
}
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _expects(ann: Any, meta: tuple = ()) -> str:
    """What a field's annotation takes, in words: 'an integer > 0', 'one of a, b'."""
    origin = get_origin(ann)
    if origin is Annotated:
        base, *extra = get_args(ann)
        more = tuple(m for x in extra for m in (x.metadata if isinstance(x, FieldInfo) else [x]))
        return _expects(base, meta + more)
    if origin in (Union, types.UnionType):
        return " or ".join(dict.fromkeys(_expects(a, meta) for a in get_args(ann) if a is not type(None)))
    bounds = "".join(f" {op} {getattr(m, attr)}" for m in meta for attr, op in _BOUNDS if hasattr(m, attr))
    if origin is Literal:
        return "one of " + ", ".join(map(str, get_args(ann)))
    if origin is list:
        return "a list of strings" if get_args(ann) == (str,) else "a list"
    if origin is dict:
        return "an object of string or number values"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        ann, "a valid value"
    ) + bounds


def _describe(err: ValidationError, model: type[BaseModel] | None = None) -> Rejected:
    """The first validation error as one line that says what was expected and
    what was given, e.g. `quantity: expected an integer > 0, got "12"`."""
    e = err.errors(include_url=False)[0]
    parts = [str(p) for p in e["loc"] if not _BRANCH.match(str(p))]  # drop union branch names
    loc = ".".join(parts)
    v = e.get("input")
    if parts == ["ts"] and e["type"] != "missing":
        try:
            if type(v) not in (int, str):
                raise ValueError("must be RFC 3339 with an offset or epoch milliseconds")
            parse_ts(v)
        except ValueError as exc:
            return Rejected("invalid_field", f"ts: {exc}, got {_given(v)}")
    if e["type"] == "missing":
        return Rejected("missing_field", f"missing required field {loc}")
    kind, ctx = e["type"], e.get("ctx") or {}
    if kind == "string_too_long":
        msg = f"expected a string of at most {ctx.get('max_length')} characters, got {len(v) if isinstance(v, str) else '?'}"
    elif kind == "string_too_short":
        msg = f"expected a non-empty string, got {_given(v)}"
    elif kind == "too_long":
        msg = f"expected at most {ctx.get('max_length')} items, got {ctx.get('actual_length', '?')}"
    elif len(parts) == 2 and parts[0] == "attrs":
        msg = f"expected a string or a number, got {_given(v)}"
    elif model is not None and len(parts) == 1 and parts[0] in model.model_fields:
        info = model.model_fields[parts[0]]
        msg = f"expected {_expects(info.annotation, tuple(info.metadata))}, got {_given(v)}"
    elif kind in _PLAIN_KINDS:
        msg = f"expected {_PLAIN_KINDS[kind]}, got {_given(v)}"
    else:
        msg = e["msg"].removeprefix("Value error, ") + f", got {_given(v)}"
    n = len({tuple(p for p in x["loc"] if not _BRANCH.match(str(p))) for x in err.errors(include_url=False)})
    more = f" (+{n - 1} more)" if n > 1 else ""
    return Rejected("invalid_field", f"{loc}: {msg}{more}" if loc else msg + more)


def decode_value(topic: str, raw: str | bytes) -> EventStruct:
    """Validate one record value from `topic`. Raises Rejected."""
    decoder = VALUE_DECODERS.get(topic)
    if decoder is None:
        raise Rejected("unknown_topic", f"unknown topic {topic!r}")
    try:
        return decoder.decode(raw)
    except Invalid:
        pass
    obj = _loads(raw)
    if not isinstance(obj, dict):
        raise Rejected("not_object", f"not a JSON object (got {type(obj).__name__})")
    try:
        # A record msgspec refused and pydantic takes (none is known;
        # tests/engine/test_structs.py compares them) is still an event.
        ev = _VALUE_ADAPTERS[topic].validate_python(obj, strict=True)
        return EVENT_STRUCTS[topic](**ev.__dict__)
    except ValidationError as err:
        # validate_python cannot take RFC 3339 strings in strict mode the way
        # JSON can, but `ts` is a plain str/int union here, so this is faithful.
        raise _describe(err, EVENT_MODELS[topic]) from None


def decode_line(line: str | bytes) -> tuple[str, EventStruct]:
    """A replay line -> (topic, event). Raises Rejected with topic set when known.

    Accepts `{"topic": T, "value": {...}}` and `kcat -J` envelopes, whose
    `payload` is the value's text.
    """
    try:
        env = LINE_DECODER.decode(line)
    except Invalid:
        return decode_line_slow(line)
    return TOPIC_OF[type(env)], env.value


def decode_line_slow(line: str | bytes) -> tuple[str, EventStruct]:
    """decode_line for a line the fast path refused: works out the precise reason."""
    obj = _loads(line)
    if not isinstance(obj, dict):
        raise Rejected("not_object", f"not a JSON object (got {type(obj).__name__})")
    topic = obj.get("topic")
    if not isinstance(topic, str):
        raise Rejected("bad_envelope", 'line needs a string "topic" and a "value" object')
    if "value" in obj:
        value = obj["value"]
        if isinstance(value, str):
            return topic, decode_value(topic, value)
        if topic not in VALUE_DECODERS:
            raise Rejected("unknown_topic", f"unknown topic {topic!r}")
        if not isinstance(value, dict):
            raise Rejected("not_object", f"value is not a JSON object (got {type(value).__name__})")
        return topic, decode_value(topic, json.dumps(value))
    if "payload" in obj:  # kcat -J
        payload = obj["payload"]
        if not isinstance(payload, str):
            raise Rejected("bad_envelope", "kcat payload is not a string")
        return topic, decode_value(topic, payload)
    raise Rejected("bad_envelope", 'line needs a "value" (or kcat "payload")')


def dead_letter(
    original: str | bytes,
    exc: Rejected,
    topic: str | None,
    partition: int | None = None,
    offset: int | None = None,
    line: int | None = None,
    key: str | bytes | None = None,
) -> DeadLetter:
    text = original.decode("utf-8", errors="replace") if isinstance(original, bytes) else original
    if isinstance(key, bytes):
        key = key.decode("utf-8", errors="replace")
    if len(text) > MAX_ORIGINAL_CHARS:
        text = text[:MAX_ORIGINAL_CHARS] + f"...[truncated {len(text) - MAX_ORIGINAL_CHARS} chars]"
    return DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        line=line,
        key=key,
        original=text,
        reason=exc.reason,
        reason_code=exc.code,
    )


def topic_of(line: str | bytes) -> str | None:
    """Best effort: the topic named by a rejected replay line, for the dead letter."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    t = obj.get("topic") if isinstance(obj, dict) else None
    return t if isinstance(t, str) else None
