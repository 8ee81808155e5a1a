"""Cost of one CEL expression evaluation, next to a compiled `{field, op, value}` condition.

    python bench/bench_expr.py [--events 200000] [--repeat 3] [--compare]

Events: the order events of `anomalyd.simulate.generate`, decoded with
`decode_value` exactly as the engine decodes them, after adding to each
order an `attrs.floor_price` (an int for half of them, a float for the
other half, a quarter of orders without it) and 0-3 promo codes (a third
without the field), so every path (present, missing, int/float mix) runs.

Figures are µs per call of the compiled callable on one event, the best of
`--repeat` passes over all events, loop included (the empty loop's cost is
printed too). Results are recorded in notes/expressions.md.

`--compare` also measures the two other CEL packages, if importable
(`common-expression-language`, `cel-python`; neither is a dependency:
`pip install` them in a scratch venv), each with its own best calling
convention, and prints a correctness matrix of the three on the cases of
tests/engine/test_expr.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomalyd.engine.decode import decode_value  # noqa: E402
from anomalyd.engine.rules.conditions import compile_condition  # noqa: E402
from anomalyd.engine.rules.expr import NO_VALUE, compile_expr  # noqa: E402
from anomalyd.engine.rules.model import Condition  # noqa: E402
from anomalyd.simulate import generate  # noqa: E402

EXPRS = ["size(promo_codes) >= 2", "unit_price * quantity > 100", "attrs.floor_price - unit_price"]
PROMOS = ["618SALE", "VIP10", "NEWUSER"]


def order_events(n: int, seed: int = 7) -> list:
    rng = random.Random(seed)
    out = []
    for env in generate(seed=seed, events=n * 4, anomalies=[]):
        if env["topic"] != "orders":
            continue
        v = dict(env["value"])
        r = rng.random()
        if r < 0.375:
            v["attrs"] = {"floor_price": rng.randint(10, 500), "lot": "A"}
        elif r < 0.75:
            v["attrs"] = {"floor_price": round(rng.uniform(10, 500), 2), "lot": "B"}
        k = rng.randint(0, 3)
        if rng.random() < 0.67:
            v["promo_codes"] = PROMOS[:k]
        else:
            v.pop("promo_codes", None)
        out.append(decode_value("orders", json.dumps(v)))
        if len(out) >= n:
            break
    return out


def per_call_us(fn, events, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for e in events:
            fn(e)
        best = min(best, time.perf_counter() - t)
    return best / len(events) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", action="store_true")
    a = ap.parse_args()
    from importlib.metadata import version

    import cel_expr_python  # noqa: F401

    t = time.perf_counter()
    events = order_events(a.events)
    print(
        f"python {platform.python_version()} · cel-expr-python {version('cel-expr-python')} · "
        f"{len(events)} decoded order events in {time.perf_counter() - t:.1f}s"
    )
    rows = [("empty loop (for e in events: f(e), f = lambda e: None)", lambda e: None)]
    rows.append(
        (
            'condition {field: status, op: "==", value: created}',
            compile_condition(Condition(field="status", op="==", value="created")),
        )
    )
    rows.append(
        (
            'condition {field: quantity, op: ">", value: 2}',
            compile_condition(Condition(field="quantity", op=">", value=2)),
        )
    )
    exprs = {}
    for text in EXPRS:
        x = compile_expr("orders", text)
        exprs[text] = x
        rows.append((f"expr {text}   [kind {x.kind}]", x))
    x = exprs["attrs.floor_price - unit_price"]
    prog = x._program

    def every_field(ev):  # what __call__ would cost with an activation of the whole event
        d = {k: v for k, v in ev.__dict__.items() if v is not None}
        d.setdefault("attrs", {})
        return prog.eval(data=d).value()

    rows.append(("  same, activation of every field instead of the fields read", every_field))
    width = max(len(r[0]) for r in rows)
    for label, fn in rows:
        print(f"  {label:<{width}}  {per_call_us(fn, events, a.repeat):6.2f} µs/eval")
    for text, x in exprs.items():
        vals = [x(e) for e in events[:10_000]]
        nv = sum(v is NO_VALUE for v in vals)
        print(
            f"  {text}: on the first 10000 events {nv} no value (counters after all runs: "
            f"missing {x.missing}, errors {x.errors})"
        )
    if a.compare:
        compare(events, a.repeat)


# --- the other packages --------------------------------------------------------------


def _activation(ev, names):
    d = {}
    for n in names:
        v = getattr(ev, n)
        if v is not None:
            d[n] = v
        elif n == "attrs":
            d[n] = {}
    return d


FIELDS = {
    "size(promo_codes) >= 2": ("promo_codes",),
    "unit_price * quantity > 100": ("unit_price", "quantity"),
    "attrs.floor_price - unit_price": ("attrs", "unit_price"),
}


def compare(events, repeat: int) -> None:
    from importlib.metadata import version

    print("\n--compare: raw per-evaluation cost, activation built from the fields read, errors caught")
    try:
        import cel as celrust

        def rust(text):
            p, names = celrust.compile(text), FIELDS[text]

            def f(ev):
                try:
                    return p.execute(_activation(ev, names))
                except Exception:
                    return NO_VALUE

            return f

        print(f"  common-expression-language {version('common-expression-language')} (cel-rust, no type checker)")
        for text in EXPRS:
            print(f"    {text:<34} {per_call_us(rust(text), events, repeat):6.2f} µs/eval")
    except ImportError as exc:
        print(f"  common-expression-language: not importable ({exc})")
    try:
        import celpy

        env = celpy.Environment()  # InterpretedRunner: its CompiledRunner fails on lark 1.3.1 here

        def py(text):
            prg, names = env.program(env.compile(text)), FIELDS[text]

            def f(ev):
                try:
                    return prg.evaluate(celpy.json_to_cel(_activation(ev, names)))
                except Exception:
                    return NO_VALUE

            return f

        n = min(len(events), 20_000)
        print(f"  cel-python {version('cel-python')} (pure Python, no type checker; on {n} events)")
        for text in EXPRS:
            print(f"    {text:<34} {per_call_us(py(text), events[:n], 1):6.2f} µs/eval")
    except ImportError as exc:
        print(f"  cel-python: not importable ({exc})")
    correctness()


CASES = [  # (expression, context, expected) -- what tests/engine/test_expr.py asks
    ("100 - 80.5", {}, 19.5),
    ("attrs.floor_price - unit_price", {"attrs": {"floor_price": 100}, "unit_price": 80.5}, 19.5),
    ("attrs.floor_price - unit_price", {"attrs": {"floor_price": 100.0}, "unit_price": 80}, 20),
    ("unit_price * quantity > 100", {"unit_price": 80.5, "quantity": 3}, True),
    ("quantity > 2.5", {"quantity": 3}, True),
    ("unit_price == 100", {"unit_price": 100.0}, True),
    ("size(promo_codes) >= 2", {"promo_codes": ["A", "B"]}, True),
    ("has(attrs.floor_price)", {"attrs": {"floor_price": 1}}, True),
    ('status == "created" && unit_price < 10', {"status": "created", "unit_price": 5.0}, True),
    ('merchant_id in ["M-1", "M-2"]', {"merchant_id": "M-2"}, True),
    ('sku.startsWith("SKU-")', {"sku": "SKU-1"}, True),
]


def correctness() -> None:
    print("\n  correctness (ok = right value; package as shipped, no declared overloads):")
    runners = {}
    try:
        from cel_expr_python import cel as cpp

        T = cpp.Type
        plain = cpp.NewEnv(
            variables={
                "attrs": T.Map(T.STRING, T.DYN),
                "unit_price": T.DOUBLE,
                "quantity": T.INT,
                "promo_codes": T.List(T.STRING),
                "status": T.STRING,
                "merchant_id": T.STRING,
                "sku": T.STRING,
            }
        )

        def run_cpp(text, ctx):
            v = plain.compile(text).eval(data=ctx)
            if v.type() == T.ERROR:
                raise RuntimeError(v.value())
            return v.value()

        runners["cel-expr-python"] = run_cpp
        runners["cel-expr-python + expr.py decls"] = lambda text, ctx: (
            compile_expr("orders", text)._program.eval(data=ctx).value()
        )
    except ImportError:
        pass
    try:
        import cel as celrust

        runners["common-expression-language"] = lambda text, ctx: celrust.compile(text).execute(ctx)
    except ImportError:
        pass
    try:
        import celpy

        env = celpy.Environment()
        runners["cel-python"] = lambda text, ctx: env.program(env.compile(text)).evaluate(celpy.json_to_cel(ctx))
    except ImportError:
        pass
    for name, run in runners.items():
        marks = []
        for text, ctx, want in CASES:
            try:
                got = run(text, ctx)
                ok = got == want and not isinstance(got, str)
            except Exception as exc:  # noqa: BLE001
                got, ok = type(exc).__name__, False
            marks.append("ok" if ok else f"FAIL({text})")
        good = sum(m == "ok" for m in marks)
        print(f"    {name:<32} {good}/{len(CASES)}  " + " ".join(m for m in marks if m != "ok"))


if __name__ == "__main__":
    main()
