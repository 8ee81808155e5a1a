"""The terminal report: rich tables of the per-rule figures, the diff and the labels."""

from __future__ import annotations

import io
import os
import sys
from typing import IO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import fmt
from .core import Backtest, group_text

MAX_DIFF_ROWS = 20


def render(bt: Backtest, out: IO[str] | None = None) -> None:
    """Print the report: in colour on a terminal, as plain text (no trailing blanks) otherwise."""
    out = out if out is not None else sys.stdout
    if hasattr(out, "isatty") and out.isatty():
        _render(bt, Console(file=out, highlight=False))
        return
    buf = io.StringIO()
    width = None if "COLUMNS" in os.environ else 200  # tables shrink to their content; this is the limit
    _render(bt, Console(file=buf, highlight=False, width=width, color_system=None))
    out.write("".join(ln.rstrip() + "\n" for ln in buf.getvalue().splitlines()))


def _render(bt: Backtest, con: Console) -> None:
    d = bt.to_dict()
    ev = d["events"]
    cur = d["current"]
    base = d["baseline"]
    diff = d["diff"]

    span = f"{ev['first_ts']} → {ev['last_ts']} ({fmt.duration(ev['span_ms'])})" if ev["first_ts"] else "no events"
    head = Text()
    head.append("backtest ", style="bold")
    head.append(f"{ev['total']} events", style="bold cyan")
    head.append(f" over {span}")
    extra = []
    if ev["dead_letters"]:
        extra.append(f"{ev['dead_letters']} dead letters")
    if ev["late"]:
        extra.append(f"{ev['late']} too late")
    if extra:
        head.append(", " + ", ".join(extra), style="yellow")
    con.print(head)
    rules_line = Text(f"rules {cur['rules_dir'] or '(given)'} ({cur['ruleset_version']})", style="dim")
    if base:
        rules_line.append(f"  vs baseline {base['rules_dir'] or '(given)'} ({base['ruleset_version']})")
    con.print(rules_line)
    con.print()

    labelled = d["labels"] is not None
    t = Table(
        box=box.SIMPLE_HEAD, show_edge=False, show_footer=True, header_style="bold", footer_style="bold", pad_edge=False
    )
    t.add_column("rule", footer="total", no_wrap=True)
    tot = cur["totals"]
    t.add_column("fired", justify="right", footer=str(tot["fired"]))
    t.add_column("resolved", justify="right", footer=str(tot["resolved"]))
    t.add_column("groups", justify="right", footer=str(tot["groups"]))
    t.add_column("/hour", justify="right", footer=fmt.rate(tot["alerts_per_hour"]))
    t.add_column("firing", justify="right", footer=fmt.duration(tot["firing_ms"]))
    t.add_column("breaker", justify="right", footer=str(tot["breaker_opens"]))
    t.add_column("noisiest groups", footer="", no_wrap=True)
    if labelled:
        sc = tot["score"] or {}
        t.add_column("precision", justify="right", footer=fmt.pct(sc.get("precision")))
        t.add_column("recall", justify="right", footer=fmt.pct(sc.get("recall")))
    if diff:
        dt = diff["totals"]
        t.add_column("+new", justify="right", style="green", footer=Text(str(dt["only_new"]), style="green"))
        t.add_column("−old", justify="right", style="red", footer=Text(str(dt["only_old"]), style="red"))
        t.add_column("=both", justify="right", footer=str(dt["both"]))

    rids = sorted(set(cur["rules"]) | (set(base["rules"]) if base else set()))
    for rid in rids:
        s = cur["rules"].get(rid)
        name = Text(rid)
        if s and s["mode"] == "shadow":
            name.append(" shadow", style="magenta")
        if diff:
            st = diff["rules"][rid]["status"]
            if st != "unchanged":
                name.append(f" {st}", style={"added": "green", "removed": "red", "changed": "yellow"}[st])
        if s is None:  # removed: only the baseline has it
            row: list[str | Text] = [name, *["–"] * 7]
            if labelled:
                row += ["–", "–"]
        else:
            noisy = (
                Text("\n").join(Text.assemble(_values(g["group"]), (f" ×{g['firings']}", "dim")) for g in s["noisiest"])
                if s["noisiest"]
                else Text("–", style="dim")
            )
            zero = "dim" if s["fired"] == 0 else ""
            row = [
                name,
                Text(str(s["fired"]), style=zero or "bold"),
                str(s["resolved"])
                if s["open_at_end"] == 0
                else Text(f"{s['resolved']} +{s['open_at_end']} open", style="yellow"),
                str(s["groups"]),
                fmt.rate(s["alerts_per_hour"]),
                fmt.duration(s["firing_ms"]),
                str(s["breaker_opens"]) if s["breaker"] else Text("–", style="dim"),
                noisy,
            ]
            if labelled:
                sc = s["score"]
                if sc is None:
                    row += [Text("–", style="dim"), Text("–", style="dim")]
                else:
                    row += [
                        _pct_text(
                            sc["precision"], f" {sc['true_positives']}/{sc['true_positives'] + sc['false_positives']}"
                        ),
                        _pct_text(sc["recall"], f" {sc['detected']}/{sc['anomalies']}"),
                    ]
        if diff:
            dr = diff["rules"][rid]
            row += [
                str(dr["only_new"]) if dr["only_new"] else Text("0", style="dim"),
                str(dr["only_old"]) if dr["only_old"] else Text("0", style="dim"),
                str(dr["both"]),
            ]
        t.add_row(*row)
    con.print(t)

    seqs = {rid: s["outcomes"] for rid, s in cur["rules"].items() if "outcomes" in s}
    if seqs:
        con.print()
        con.print(Text("sequence outcomes (expectations ended in the input)", style="bold"))
        for rid, o in seqs.items():
            con.print(f"  {rid}: {o['matched']} matched, {o['mismatched']} mismatched, {o['missed']} missed")

    if diff and (diff["totals"]["only_new"] or diff["totals"]["only_old"]):
        con.print()
        dtab = Table(
            title="episodes that differ from the baseline",
            title_justify="left",
            title_style="bold",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            header_style="bold",
        )
        dtab.add_column("")
        dtab.add_column("rule", no_wrap=True)
        dtab.add_column("group")
        dtab.add_column("started", no_wrap=True)
        dtab.add_column("resolved", no_wrap=True)
        dtab.add_column("message", no_wrap=True, overflow="ellipsis")
        rows = []
        for rid, dr in diff["rules"].items():
            rows += [("+", rid, e) for e in dr["new_episodes"]] + [("−", rid, e) for e in dr["old_episodes"]]
        rows.sort(key=lambda r: (r[2]["started_at"], r[1], r[0]))
        for sign, rid, e in rows[:MAX_DIFF_ROWS]:
            style = "green" if sign == "+" else "red"
            dtab.add_row(
                Text(sign, style=style),
                Text(rid, style=style),
                group_text(e["group"]),
                e["started_at"],
                e["resolved_at"] or Text("open at end", style="yellow"),
                e["message"],
            )
        con.print(dtab)
        if len(rows) > MAX_DIFF_ROWS:
            con.print(Text(f"  … {len(rows) - MAX_DIFF_ROWS} more (see --json or --html)", style="dim"))

    if labelled:
        lab = d["labels"]
        missed = [a for a in lab["anomalies"] if not a["detected_by"]]
        con.print()
        line = Text(
            f"labels: {len(lab['anomalies'])} anomalies ({lab['events']} labelled events) of {len(lab['kinds'])} kinds",
            style="dim",
        )
        con.print(line)
        for a in missed:
            con.print(Text(f"  missed {a['id']} ({a['start']} → {a['end']}, {a['events']} events)", style="yellow"))
        unscored = sorted(
            k for k in lab["kinds"] if not any(s["score"] and s["score"]["kind"] == k for s in cur["rules"].values())
        )
        if unscored:
            con.print(Text(f"  no rule maps to: {', '.join(unscored)}", style="yellow"))


def _values(group: dict) -> str:
    """A group by its values (the fields are the rule's group_by): `SKU-1`, `card · E_RISK`."""
    return " · ".join(str(v) for v in group.values()) if group else "(all)"


def _pct_text(x: float | None, detail: str) -> Text:
    t = Text(fmt.pct(x), style="bold" if x is not None else "dim")
    if x is not None and x < 0.5:
        t.stylize("red")
    t.append(detail, style="dim")
    return t
