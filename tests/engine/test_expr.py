"""CEL expressions over real decoded events (anomalyd/engine/rules/expr.py)."""

from __future__ import annotations

import json

import pytest

from anomalyd.engine.decode import decode_value
from anomalyd.engine.rules.expr import NO_VALUE, Expr, ExprCompileError, ExprError, compile_expr


def order(**kw):
    base = {
        "event_id": "e1",
        "ts": 1_750_000_000_000,
        "order_id": "O-1",
        "sku": "SKU-1",
        "quantity": 3,
        "unit_price": 80.5,
        "status": "created",
    }
    base.update(kw)
    return decode_value("orders", json.dumps({k: v for k, v in base.items() if v is not ...}))


def ev(text: str, event, source: str = "orders"):
    return compile_expr(source, text)(event)


# --- numbers: ints and floats mix ------------------------------------------------


def test_floor_minus_price_int_floor_float_price():
    e = order(attrs={"floor_price": 100}, unit_price=80.5)
    assert ev("attrs.floor_price - unit_price", e) == 19.5


def test_floor_minus_price_float_floor_int_price():
    e = order(attrs={"floor_price": 100.0}, unit_price=80)
    r = ev("attrs.floor_price - unit_price", e)
    assert r == 20 and type(r) is float


@pytest.mark.parametrize(
    "text,want",
    [
        ("100 - 80.5", 19.5),
        ("80.5 - 100", -19.5),
        ("2 * 1.5", 3.0),
        ("3 / 2.0", 1.5),
        ("1.5 + 1", 2.5),
        ("7 / 2", 3),  # int with int stays CEL int arithmetic
        ("100 == 100.0", True),
        ("100 != 100.0", False),
        ("1 < 1.5", True),
        ("2.5 >= 3", False),
        ("2 in [1.0, 2.0]", True),
        ("2.0 in [1, 2]", True),
    ],
)
def test_literals_mix(text, want):
    r = ev(text, order())
    assert r == want and type(r) is type(want)


@pytest.mark.parametrize("price,qty,want", [(80.5, 3, True), (100, 1, False), (30, 3, False), (50.5, 2, True)])
def test_price_times_quantity(price, qty, want):
    assert ev("unit_price * quantity > 100", order(unit_price=price, quantity=qty)) is want


def test_quantity_against_float():
    assert ev("quantity > 2.5", order(quantity=3)) is True
    assert ev("quantity > 2.5", order(quantity=2)) is False


@pytest.mark.parametrize("price", [100, 100.0])
def test_unit_price_equals_int_literal(price):
    assert ev("unit_price == 100", order(unit_price=price)) is True
    assert ev("unit_price == 100.0", order(unit_price=price)) is True
    assert ev("unit_price != 100", order(unit_price=price)) is False


def test_number_result_types_documented():
    # every number field is a double, even an int one (quantity) or an integral JSON value:
    # mixed arithmetic then runs in cel-cpp, not in the leaking Python overloads
    assert type(ev("unit_price", order(unit_price=100))) is float
    assert type(ev("quantity * 2", order(quantity=3))) is float
    assert type(ev("size(promo_codes) * 2", order(promo_codes=["a"]))) is int  # CEL ints stay ints
    assert type(ev("unit_price * quantity", order(unit_price=100, quantity=3))) is float
    assert ev("ts", order()) == 1_750_000_000_000


def test_attrs_numbers_mix_both_ways():
    for fp in (100, 100.0):
        assert ev("attrs.floor_price > unit_price", order(attrs={"floor_price": fp}, unit_price=80)) is True
        assert ev("attrs.floor_price == 100", order(attrs={"floor_price": fp})) is True
        assert ev("attrs.floor_price * quantity", order(attrs={"floor_price": fp}, quantity=2)) == 200


# --- lists, has, strings, membership ------------------------------------------------


def test_size_promo_codes():
    assert ev("size(promo_codes) >= 2", order(promo_codes=["A", "B"])) is True
    assert ev("size(promo_codes) >= 2", order(promo_codes=["A"])) is False
    assert ev("promo_codes[0]", order(promo_codes=["A"])) == "A"
    assert ev('promo_codes.exists(p, p.startsWith("VIP"))', order(promo_codes=["X", "VIP-1"])) is True


def test_size_promo_codes_absent_is_no_value():
    x = compile_expr("orders", "size(promo_codes) >= 2")
    assert x(order()) is NO_VALUE
    assert x.missing == 1 and x.errors == 0


def test_has_attrs():
    x = compile_expr("orders", "has(attrs.floor_price)")
    assert x(order(attrs={"floor_price": 1})) is True
    assert x(order(attrs={"other": "v"})) is False
    assert x(order()) is False  # no attrs at all: has() is false, not missing
    assert x.missing == 0 and x.errors == 0


def test_and_or_strings_membership():
    assert ev('status == "created" && unit_price < 10', order(unit_price=5)) is True
    assert ev('status == "created" && unit_price < 10', order(unit_price=50)) is False
    assert ev('merchant_id in ["M-1", "M-2"]', order(merchant_id="M-2")) is True
    assert ev('merchant_id in ["M-1", "M-2"]', order(merchant_id="M-3")) is False
    assert ev('sku.startsWith("SKU-")', order(sku="SKU-9")) is True
    assert ev('sku.startsWith("SKU-")', order(sku="X-9")) is False
    assert ev('sku + "/" + status', order()) == "SKU-1/created"
    assert ev('sku.matches("^SKU-[0-9]+$")', order()) is True


def test_other_sources():
    inv = decode_value("inventory", json.dumps({"event_id": "i", "ts": 1, "sku": "S", "available": -3, "reserved": 5}))
    assert ev("available + reserved", inv, "inventory") == 2
    assert ev("available < 0.5", inv, "inventory") is True
    pay = decode_value(
        "payments",
        json.dumps({"event_id": "p", "ts": 1, "payment_id": "P", "order_id": "O", "amount": 10, "status": "failed"}),
    )
    assert ev('status == "failed" && amount >= 10', pay, "payments") is True


# --- missing values and run-time failures: never raise ------------------------------


@pytest.mark.parametrize(
    "text,event",
    [
        ('merchant_id == "M-1"', order()),  # optional field None
        ("attrs.floor_price - unit_price", order()),  # no attrs at all
        ("attrs.floor_price - unit_price", order(attrs={"x": 1})),  # attrs key missing
    ],
)
def test_missing(text, event):
    x = compile_expr("orders", text)
    assert x(event) is NO_VALUE
    assert (x.missing, x.errors) == (1, 0)


def test_missing_field_absorbed_by_or():
    # CEL's commutative || / &&: an error on one side does not matter if the other decides
    x = compile_expr("orders", 'merchant_id == "M-1" || quantity > 2')
    assert x(order(quantity=3)) is True
    x2 = compile_expr("orders", 'merchant_id == "M-1" && quantity > 5')
    assert x2(order(quantity=3)) is False


@pytest.mark.parametrize(
    "text,event",
    [
        ("quantity / 0", order()),
        ("unit_price / 0.0", order()),  # +Inf in CEL: counted as a failure
        ("quantity / 0.0", order()),  # mixed overload
        ("size(promo_codes) % 0", order(promo_codes=["a"])),
        ("9223372036854775807 + size(promo_codes)", order(promo_codes=["a"])),  # int overflow
        ("attrs.x * 2", order(attrs={"x": "abc"})),  # dyn attrs value of the wrong type
        ("attrs.x > 1", order(attrs={"x": "abc"})),
        ("attrs.x.startsWith('a')", order(attrs={"x": 5})),
    ],
)
def test_runtime_errors(text, event):
    x = compile_expr("orders", text)
    assert x(event) is NO_VALUE
    assert (x.missing, x.errors) == (0, 1)


def test_counters_accumulate_and_no_value_is_false():
    x = compile_expr("orders", "attrs.floor_price - unit_price > 0")
    for e in (order(), order(attrs={"floor_price": "z"}), order(attrs={"floor_price": 100})):
        x(e)
    assert (x.missing, x.errors) == (1, 1)
    assert not NO_VALUE


def test_never_raises_on_odd_input():
    x = compile_expr("orders", "unit_price * quantity > 100")
    assert x(object()) is NO_VALUE  # not even an event
    assert x.errors == 1


# --- load time ------------------------------------------------------------------------


def errors_of(text: str, source: str = "orders") -> list[ExprError]:
    with pytest.raises(ExprCompileError) as info:
        compile_expr(source, text)
    return info.value.errors


@pytest.mark.parametrize(
    "text,offset",
    [("1 +", 3), ("unit_price >", 12), ("(quantity", 9), ("a ==", 4), ('sku == "x', 7), ("quantity >\n  )", 13)],
)
def test_syntax_error_offset(text, offset):
    errs = errors_of(text)
    assert errs[0].offset == offset, errs
    assert "syntax error" in errs[0].message


def test_unknown_field_with_hint_and_offset():
    errs = errors_of("quantity > 1 && unit_prize > 1")
    assert len(errs) == 1
    assert errs[0].offset == 16
    assert "'unit_prize'" in errs[0].message and "did you mean 'unit_price'?" in errs[0].message


def test_unknown_field_is_per_source():
    compile_expr("payments", "amount > 1")
    errs = errors_of("amount > 1", "orders")
    assert "'amount'" in errs[0].message and errs[0].offset == 0
    errs = errors_of("unit_price > 1", "inventory")
    assert "'unit_price'" in errs[0].message


def test_unknown_qualified_name_points_at_it():
    errs = errors_of("quantity + promo.size")
    assert len(errs) == 1
    assert errs[0].offset == 11 and "'promo'" in errs[0].message


@pytest.mark.parametrize(
    "text,offset",
    [
        ("sku * 2", 4),
        ("status + 1", 7),
        ('"a" * 2', 4),
        ("promo_codes > 1", 12),
        ("sku.startsWith(1)", 14),
        ("unit_price + sku", 11),
    ],
)
def test_impossible_types(text, offset):
    errs = errors_of(text)
    assert errs[0].offset == offset
    assert "no matching overload" in errs[0].message


def test_every_error_reported():
    errs = errors_of("sku * 2 + unit_prize + foo")
    assert [e.offset for e in errs] == [4, 10, 23]


def test_offsets_count_characters_not_bytes():
    errs = errors_of('"é€😀" + 1')
    assert errs[0].offset == 6


def test_empty_and_unknown_source():
    assert errors_of("  ")[0].message == "empty expression"
    assert "unknown source" in errors_of("1", "nope")[0].message


@pytest.mark.parametrize(
    "text,kind",
    [
        ("size(promo_codes) >= 2", "bool"),
        ("unit_price * quantity", "number"),
        ("attrs.floor_price - unit_price", "number"),  # checker: every '-' overload on a dyn gives a number
        ("attrs.floor_price", "dyn"),
        ("sku", "string"),
        ("promo_codes", "list"),
        ("ts", "number"),
        ("has(attrs.x)", "bool"),
    ],
)
def test_kind(text, kind):
    assert compile_expr("orders", text).kind == kind


@pytest.mark.parametrize(
    "text,fields",
    [
        ("attrs.floor_price - unit_price", {"attrs", "unit_price"}),
        ("size(promo_codes) >= 2", {"promo_codes"}),
        ("100 - 80.5", set()),
        ('promo_codes.exists(sku, sku == "x")', {"promo_codes"}),  # the loop variable is not the field
        ("promo_codes.exists(p, p == sku)", {"promo_codes", "sku"}),
        ('"unit_price" == status', {"status"}),  # a name inside a string is not a read
    ],
)
def test_fields(text, fields):
    x = compile_expr("orders", text)
    assert x.fields == frozenset(fields)
    assert isinstance(x, Expr) and x.text == text and x.source == "orders"


def test_pickle_and_deepcopy_recompile():
    import copy
    import pickle

    x = compile_expr("orders", "quantity > 2")
    for y in (copy.deepcopy(x), pickle.loads(pickle.dumps(x))):
        assert y is not x and y.text == x.text and y.kind == "bool" and y(order(quantity=3)) is True
