"""The fast decoder (msgspec Structs) takes exactly what the pydantic models take.

The models are the declaration users read (JSON Schema, the dead letter's
reasons); the Structs are derived from them. The reference here is the
models alone: the text parsed as JSON (NaN and Infinity refused), then
validated strictly. A record the fast path takes must be one the reference
takes, read alike, value for value and type for type; one it refuses goes to
the slow path, so decode_value as a whole must agree with the reference.
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from anomalyd.engine.decode import Invalid, Rejected, decode_value
from anomalyd.engine.events import EVENT_MODELS, MAX_ITEMS, MAX_STR
from anomalyd.engine.structs import EVENT_STRUCTS, VALUE_DECODERS
from tests.engine.test_decode import GOOD

ADAPTERS = {t: TypeAdapter(m) for t, m in EVENT_MODELS.items()}


def _no_constant(name):
    raise ValueError(name)


def fields_of(ev):
    return {f: getattr(ev, f) for f in ev.__struct_fields__}


def both(topic: str, text: str):
    """(the reference's event as a dict or None, the fast path's, decode_value's)."""
    try:
        ref = dict(ADAPTERS[topic].validate_python(json.loads(text, parse_constant=_no_constant), strict=True))
    except (ValueError, ValidationError):
        ref = None
    try:
        fast = fields_of(VALUE_DECODERS[topic].decode(text))
    except Invalid:
        fast = None
    try:
        whole = fields_of(decode_value(topic, text))
    except Rejected:
        whole = None
    return ref, fast, whole


def alike(a, b):
    assert a == b
    assert {k: type(v) for k, v in a.items()} == {k: type(v) for k, v in b.items()}


def same(ref, fast, whole):
    assert (ref is None) == (whole is None), (ref, whole)
    if fast is not None:
        assert ref is not None, fast
        alike(ref, fast)
    if ref is not None:
        alike(ref, whole)


def test_every_field_of_every_model_is_in_its_struct():
    for topic, model in EVENT_MODELS.items():
        assert set(EVENT_STRUCTS[topic].__struct_fields__) == set(model.model_fields)


EDGES = [
    1,
    0,
    -1,
    2**63,
    10**30,
    -(10**30),
    1.0,
    -0.0,
    0.5,
    1e308,
    True,
    None,
    "",
    "x",
    "9",
    "x" * MAX_STR,
    "x" * (MAX_STR + 1),
    "é" * MAX_STR,
    "\U0001f600" * MAX_STR,
    "\U0001f600" * (MAX_STR + 1),
    [],
    ["a"] * MAX_ITEMS,
    ["a"] * (MAX_ITEMS + 1),
    [1],
    {},
    {"k": 1},
    {"k" * (MAX_STR + 1): 1},
    {f"k{i}": i for i in range(MAX_ITEMS + 1)},
    {"k": 1.5, "j": "v", "i": 2},
    {"k": None},
    {"k": [1]},
    "2026-06-18T00:00:00+08:00",
    "2026-06-18T00:00:00",
    "2026-13-18T00:00:00Z",
    253402300799999,
    253402300800000,
    "paid",
    "PAID",
]


@pytest.mark.parametrize("topic", list(GOOD))
@pytest.mark.parametrize("value", EDGES, ids=[repr(e)[:30] for e in EDGES])
def test_edge_values_in_every_field(topic, value):
    fields = list(EVENT_MODELS[topic].model_fields)
    for f in fields:
        same(*both(topic, json.dumps({**GOOD[topic], f: value})))


@pytest.mark.parametrize(
    "text",
    [
        '{"event_id":"e","ts":1,"sku":"S","available":1,"x":NaN}',
        '{"event_id":"e","ts":1,"sku":"S","available":1,"x":-Infinity}',
        '{"event_id":"e","ts":1,"sku":"S","available":1,"available":2}',
        '{"event_id":"e","ts":1,"sku":"S","available":1,"reason":"\\ud800"}',
        '{"event_id":"e","ts":1,"sku":"S","available":1e400}',
        '{"event_id":"e","ts":1,"sku":"S","available":1}  ',
        '{"event_id":"e","ts":1,"sku":"S","available":1} x',
        "[1]",
        "",
    ],
)
def test_texts_on_the_edge_of_json(text):
    same(*both("inventory", text))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(
    topic=st.sampled_from(list(GOOD)),
    patch=st.dictionaries(st.sampled_from(["ts", "quantity", "attrs", "status", "amount", "sku", "x"]), json_values),
    drop=st.sets(st.sampled_from(["event_id", "ts", "sku", "status", "reserved"])),
)
def test_random_records_read_alike(topic, patch, drop):
    value = {k: v for k, v in {**GOOD[topic], **patch}.items() if k not in drop}
    same(*both(topic, json.dumps(value)))
