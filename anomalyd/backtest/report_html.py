"""The `--html` report: one self-contained file (inline CSS and SVG, no scripts
or external assets), deterministic for a given input.

Sections: headline figures, the per-rule summary table, the diff against the
baseline, the labelled anomalies, and per rule a timeline of firing episodes
over event time (one row per group, one bar per episode).
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..engine.timeutil import format_ts
from . import fmt
from .core import Backtest, Episode, group_key, group_text

MAX_ROWS = 40  # groups drawn per timeline; the rest are counted in a note
MAX_DIFF_ROWS = 200  # episodes listed per rule in the diff
W = 1080  # timeline viewBox width
LABEL_W = 210
ROW_H = 22
AXIS_H = 30

_TICKS_MS = [
    1_000,
    5_000,
    15_000,
    30_000,
    60_000,
    2 * 60_000,
    5 * 60_000,
    10 * 60_000,
    15 * 60_000,
    30 * 60_000,
    3_600_000,
    2 * 3_600_000,
    3 * 3_600_000,
    6 * 3_600_000,
    12 * 3_600_000,
    86_400_000,
    2 * 86_400_000,
    7 * 86_400_000,
    14 * 86_400_000,
    28 * 86_400_000,
]

CSS = """
:root{--ink:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#f4f6f9;--card:#fff;--blue:#2f6fe4;--blue-l:#dbe7fd;
--green:#12a150;--green-l:#dcf5e6;--red:#d92d20;--red-l:#fde4e1;--amber:#f5a524;--amber-l:#fff3d6;--violet:#7a5af8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:28px 28px 60px}
header{display:flex;justify-content:space-between;align-items:flex-end;gap:16px;margin-bottom:18px}
h1{font-size:24px;margin:0 0 4px;letter-spacing:-.01em}
h1 .logo{display:inline-block;width:12px;height:12px;border-radius:3px;background:var(--blue);margin-right:10px;vertical-align:2px;box-shadow:5px 5px 0 var(--amber)}
h2{font-size:17px;margin:34px 0 12px}
h3{font-size:15px;margin:0}
.sub{color:var(--muted);font-size:13px}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(128px,1fr));gap:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:21px;white-space:nowrap;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums}
.card .d{color:var(--muted);font-size:12px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:13px}
th,td{padding:6px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;background:#fafbfc;white-space:nowrap}
td.n,th.n{text-align:right}
tr:last-child td{border-bottom:0}
tfoot td{font-weight:650;background:#fafbfc;border-top:1px solid var(--line)}
a{color:var(--blue);text-decoration:none}
a:hover{text-decoration:underline}
.dim{color:#98a2b3}
.chip{display:inline-block;padding:0 7px;border-radius:999px;font-size:11.5px;line-height:19px;background:#eef1f5;color:#344054;margin:0 3px 3px 0;white-space:nowrap}
.chip.P0{background:#55160c;color:#fff}.chip.P1{background:var(--red-l);color:#912018}
.chip.P2{background:var(--amber-l);color:#93370d}.chip.P3{background:#eef1f5;color:#475467}
.chip.shadow{background:#ece9fe;color:#5925dc}.chip.brk{background:#e0f2fe;color:#075985}
.chip.added,.plus{background:var(--green-l);color:#05603a}.chip.removed,.minus{background:var(--red-l);color:#912018}
.chip.changed{background:var(--amber-l);color:#93370d}
.chip.tp{background:var(--green-l);color:#05603a}.chip.miss{background:var(--red-l);color:#912018}
.track{width:64px;height:5px;border-radius:3px;background:#eef1f5;margin:5px 0 0 auto}.bar{height:5px;border-radius:3px;background:var(--blue);min-width:2px}
.groups{font-size:12.5px;color:#344054}
.delta{display:inline-block;min-width:28px;text-align:center;border-radius:6px;padding:0 5px;font-weight:600}
.rule{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px 10px;margin-bottom:14px}
.rule .top{display:flex;justify-content:space-between;align-items:baseline;gap:12px;flex-wrap:wrap}
.rule .stats{color:var(--muted);font-size:12.5px}
.rule .stats b{color:var(--ink);font-weight:600}
.rule .desc{color:var(--muted);font-size:12.5px;margin:2px 0 6px}
.legend{display:flex;gap:16px;flex-wrap:wrap;color:var(--muted);font-size:12.5px;margin:0 0 12px}
.legend i{display:inline-block;width:18px;height:10px;border-radius:3px;vertical-align:-1px;margin-right:6px}
.legend i.tri{width:0;height:0;border-radius:0;border-top:5px solid transparent;border-bottom:5px solid transparent;border-left:8px solid #98a2b3}
.legend i.dot{width:9px;height:9px;border-radius:50%;margin-right:4px}
.empty{color:var(--muted);font-size:13px;padding:10px 0 8px}
.note{color:var(--muted);font-size:12px;margin-top:4px}
svg.tl{display:block;width:100%;height:auto;margin-top:4px}
svg.tl text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;font-size:11px;fill:#475467}
svg.tl .glabel{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:11px;fill:#344054}
.ep{fill:var(--blue)}.ep.new{fill:var(--green)}.ep.old{fill:var(--red-l);stroke:var(--red);stroke-width:1.2;stroke-dasharray:3 2}
.ep.open{fill-opacity:.8}
.band{fill:var(--amber);fill-opacity:.16}.bandedge{stroke:var(--amber);stroke-width:1;stroke-opacity:.7}
.grid{stroke:#eef0f3}.axis{stroke:#cfd4dc}
.nw,td.rid{white-space:nowrap}\ndetails.eps{margin:10px 0}details.eps summary{cursor:pointer;padding:6px 2px;color:#344054}\ndetails.eps .panel{margin-top:6px}\nfooter{margin-top:40px;color:#98a2b3;font-size:12px}
"""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _anchor(rid: str) -> str:
    return "rule-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in rid)


def _ts(ms: int | None) -> str:
    return "open at end" if ms is None else format_ts(ms).replace("T", " ").replace("Z", "")


# -- the timeline ---------------------------------------------------------------


def _ticks(t0: int, t1: int) -> tuple[int, list[int]]:
    span = max(1, t1 - t0)
    step = next((s for s in _TICKS_MS if span / s <= 8), _TICKS_MS[-1])
    first = -(-t0 // step) * step
    return step, list(range(first, t1 + 1, step))


def _tick_label(t: int, step: int, span: int) -> str:
    s = format_ts(t)  # 2026-06-17T16:20:00.000Z
    if step < 60_000:
        return s[11:19]
    if span <= 86_400_000 and step < 86_400_000:
        return s[11:16]
    if step >= 86_400_000:
        return s[5:10]
    return s[5:10] + " " + s[11:16]


def timeline(bt: Backtest, rid: str, episodes: list[Episode], status: dict, kind: str | None) -> str:
    """An SVG: one row per group, a bar per episode, labelled anomalies as bands."""
    t0 = bt.first_ts if bt.first_ts is not None else 0
    t1 = bt.end if bt.last_ts is not None else t0
    if t1 <= t0:
        t1 = t0 + 60_000
    x0, x1 = LABEL_W + 8, W - 14

    def x(t: int) -> float:
        return x0 + (min(max(t, t0), t1) - t0) * (x1 - x0) / (t1 - t0)

    rows: dict[str, list[Episode]] = {}
    for e in sorted(episodes, key=lambda e: (e.start, e.gkey)):
        rows.setdefault(e.gkey, []).append(e)
    keys = list(rows)  # in order of their first episode
    hidden = len(keys) - MAX_ROWS
    if hidden > 0:  # keep the groups that caught a labelled anomaly, then the noisiest
        order = {k: i for i, k in enumerate(keys)}
        keep = sorted(keys, key=lambda k: (not any(e.verdict == "tp" for e in rows[k]), -len(rows[k]), order[k]))[
            :MAX_ROWS
        ]
        keys = sorted(keep, key=order.__getitem__)
    h = AXIS_H + len(keys) * ROW_H + 6
    out = [
        f'<svg class="tl" viewBox="0 0 {W} {h}" role="img" aria-label="firing episodes of {_e(rid)} over event time">'
    ]
    # rows
    for i, k in enumerate(keys):
        y: float = AXIS_H + i * ROW_H  # an int here; the bars below are placed at halves
        if i % 2 == 0:
            out.append(f'<rect x="0" y="{y}" width="{W}" height="{ROW_H}" fill="#f8f9fb"/>')
        g = rows[k][0].group
        label = group_text(g)
        short = label if len(label) <= 30 else label[:29] + "…"
        out.append(
            f'<text class="glabel" x="{LABEL_W}" y="{y + ROW_H / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{_e(label)}</title>{_e(short)}</text>"
        )
    # axis and grid
    step, ticks = _ticks(t0, t1)
    out.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{AXIS_H - 0.5}" y2="{AXIS_H - 0.5}"/>')
    for t in ticks:
        xt = x(t)
        out.append(f'<line class="grid" x1="{xt:.1f}" x2="{xt:.1f}" y1="{AXIS_H - 4}" y2="{h - 6}"/>')
        anchor = "start" if xt - x0 < 18 else "end" if x1 - xt < 18 else "middle"
        out.append(
            f'<text x="{xt:.1f}" y="{AXIS_H - 10}" text-anchor="{anchor}">{_e(_tick_label(t, step, t1 - t0))}</text>'
        )
    out.append(f'<text x="{LABEL_W}" y="{AXIS_H - 10}" text-anchor="end" fill="#98a2b3">event time, UTC</text>')
    # labelled anomalies of the rule's kind
    if kind:
        for an in bt.anomalies:
            if an.kind != kind:
                continue
            ax, bx = x(an.start), x(an.end)
            wdt = max(bx - ax, 2.0)
            out.append(
                f"<g><title>{_e(an.id)}: {_e(_ts(an.start))} → {_e(_ts(an.end))} UTC, "
                f"{len(an.event_ids)} labelled events</title>"
                f'<rect class="band" x="{ax:.1f}" y="{AXIS_H}" width="{wdt:.1f}" height="{h - AXIS_H - 6}"/>'
                f'<line class="bandedge" x1="{ax:.1f}" x2="{ax:.1f}" y1="{AXIS_H}" y2="{h - 6}"/></g>'
            )
    # episodes: neighbours closer than a pixel, of the same kind, share one bar
    bar_h = 12
    for i, k in enumerate(keys):
        y = AXIS_H + i * ROW_H + (ROW_H - bar_h) / 2
        bars: list[list] = []  # [ax, bx, cls, verdict, episodes]
        for e in rows[k]:
            st = status.get(e.key, "")
            cls = "ep" + (f" {st}" if st in ("new", "old") else "") + (" open" if e.end is None else "")
            ax = x(e.start)
            bx = max(x(e.end if e.end is not None else t1), ax + 3.0)
            last = bars[-1] if bars else None
            if last is not None and last[2] == cls and last[3] == e.verdict and ax <= last[1] + 1.0:
                last[1] = max(last[1], bx)
                last[4].append(e)
            else:
                bars.append([ax, bx, cls, e.verdict, [e]])
        for ax, bx, cls, verdict, eps in bars:
            out.append(
                f"<g><title>{_e(_tip(bt, rid, eps, status))}</title>"
                f'<rect class="{cls}" x="{ax:.1f}" y="{y:.1f}" width="{bx - ax:.1f}" height="{bar_h}" rx="3"/>'
            )
            if eps[-1].end is None:  # still firing at the end of the input
                out.append(
                    f'<path d="M{x1 + 1:.1f} {y - 1:.1f} l7 {bar_h / 2 + 1:.1f} l-7 {bar_h / 2 + 1:.1f}z" fill="#98a2b3"/>'
                )
            if verdict:
                color = "#12a150" if verdict == "tp" else "#d92d20"
                out.append(
                    f'<circle cx="{ax:.1f}" cy="{y - 1:.1f}" r="2.8" fill="{color}" stroke="#fff" stroke-width="1.2"/>'
                )
            out.append("</g>")
    out.append("</svg>")
    svg = "".join(out)
    if hidden > 0:
        svg += f'<div class="note">{hidden} more group{"s" if hidden != 1 else ""} not drawn: fewer firings (all are counted above).</div>'
    return svg


def _tip(bt: Backtest, rid: str, eps: list[Episode], status: dict) -> str:
    """The hover text of a bar (one episode, or several drawn as one)."""
    e = eps[0]
    st = status.get(e.key, "")
    if len(eps) == 1:
        tip = [
            f"{rid} · {group_text(e.group)}",
            f"{_ts(e.start)} → {_ts(e.end)} UTC",
            f"firing {fmt.duration(e.duration(bt.end))}",
        ]
        if e.message:
            tip.append(e.message)
        if e.inputs:
            tip.append("inputs: " + e.inputs)
    else:
        end = None if any(x.end is None for x in eps) else max(x.end for x in eps)  # type: ignore[type-var]
        tip = [
            f"{rid} · {group_text(e.group)}: {len(eps)} episodes",
            f"{_ts(e.start)} → {_ts(end)} UTC",
            f"firing {fmt.duration(sum(x.duration(bt.end) for x in eps))} in all",
        ]
    if st == "new":
        tip.append("only with the new rules")
    elif st == "old":
        tip.append("only with the baseline rules")
    if e.verdict == "tp":
        tip.append("true positive: " + ", ".join(sorted({a for x in eps for a in x.anomalies})))
    elif e.verdict == "fp":
        tip.append("false positive (no labelled anomaly)")
    return "\n".join(tip)


# -- the page ---------------------------------------------------------------------


def _card(k: str, v: str, d: str = "") -> str:
    return f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{v}</div><div class="d">{d}</div></div>'


def _chips(s: dict) -> str:
    c = [
        f'<span class="chip">{_e(s["type"])}</span>',
        f'<span class="chip">{_e(s["source"])}</span>',
        f'<span class="chip {_e(s["severity"])}">{_e(s["severity"])}</span>',
    ]
    if s["mode"] == "shadow":
        c.append('<span class="chip shadow">shadow</span>')
    if s["breaker"]:
        c.append(f'<span class="chip brk">breaker: {_e(s["breaker"])}</span>')
    if s.get("kind"):
        c.append(f'<span class="chip">label: {_e(s["kind"])}</span>')
    return "".join(c)


def render(bt: Backtest) -> str:
    d = bt.to_dict()
    ev, cur, base, diff, labels = d["events"], d["current"], d["baseline"], d["diff"], d["labels"]
    tot = cur["totals"]
    status = bt.diff_status()
    p: list[str] = []
    title = f"anomalyd backtest · {cur['rules_dir'] or 'rules'}"
    p.append(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
    )
    # header
    inputs = ", ".join(d["inputs"])
    rules = f'<code>{_e(cur["rules_dir"] or "(given)")}</code> <span class="dim">{_e(cur["ruleset_version"])}</span>'
    if base:
        rules += f' &nbsp;vs baseline <code>{_e(base["rules_dir"] or "(given)")}</code> <span class="dim">{_e(base["ruleset_version"])}</span>'
    span = f"{_e(_ts(bt.first_ts))} → {_e(_ts(bt.last_ts))} UTC" if ev["first_ts"] else "no events"
    p.append(
        f'<header><div><h1><span class="logo"></span>Backtest</h1><div class="sub">rules {rules}</div>'
        f'<div class="sub">input <code>{_e(inputs)}</code></div></div>'
        f'<div class="sub" style="text-align:right">event time<br><b style="color:var(--ink)">{span}</b></div></header>'
    )
    # cards
    by_topic = ", ".join(f"{k} {v:,}" for k, v in ev["by_topic"].items())
    extra = (f" · <b>{ev['dead_letters']}</b> dead letters" if ev["dead_letters"] else "") + (
        f" · {ev['late']} too late" if ev["late"] else ""
    )
    cards = [
        _card(
            "events",
            f'<span title="{_e(by_topic)}">{ev["total"]:,}</span>',
            f"over {_e(fmt.duration(ev['span_ms']))} of event time{extra}",
        ),
        _card(
            "alerts fired", f"{tot['fired']:,}", f"{fmt.rate(tot['alerts_per_hour'])} per hour · {tot['groups']} groups"
        ),
        _card("time firing", _e(fmt.duration(tot["firing_ms"])), f"{tot['open_at_end']} open at end"),
        _card("breaker opens", str(tot["breaker_opens"]), ""),
    ]
    if tot["score"]:
        sc = tot["score"]
        cards.append(
            _card(
                "precision",
                fmt.pct(sc["precision"]),
                f"{sc['true_positives']} true, {sc['false_positives']} false positives",
            )
        )
        cards.append(
            _card("recall", fmt.pct(sc["recall"]), f"{sc['detected']} of {sc['anomalies']} labelled anomalies")
        )
    if diff:
        dt = diff["totals"]
        cards.append(
            _card(
                "vs baseline",
                f'<span style="color:var(--green)">+{dt["only_new"]}</span> '
                f'<span style="color:var(--red)">−{dt["only_old"]}</span>',
                f"{dt['both']} episodes in both"
                + (f" · {dt['ended_differently']} end differently" if dt["ended_differently"] else ""),
            )
        )
    p.append('<section class="cards">' + "".join(cards) + "</section>")

    # summary table
    rids = sorted(set(cur["rules"]) | (set(base["rules"]) if base else set()))
    max_rate = max([s["fired"] for s in cur["rules"].values()] + [1])
    p.append(
        '<h2>Rules</h2><div class="panel"><table><thead><tr><th>rule</th><th class="n">fired</th>'
        '<th class="n">resolved</th><th class="n">groups</th><th class="n">per hour</th><th class="n">firing time</th>'
        '<th class="n">breaker opens</th><th>noisiest groups</th>'
    )
    if labels:
        p.append('<th class="n">precision</th><th class="n">recall</th>')
    p.append("</tr></thead><tbody>")
    for rid in rids:
        s = cur["rules"].get(rid)
        name = f'<a href="#{_anchor(rid)}">{_e(rid)}</a>'
        if s and s["mode"] == "shadow":
            name += ' <span class="chip shadow">shadow</span>'
        if diff and diff["rules"][rid]["status"] != "unchanged":
            st = diff["rules"][rid]["status"]
            name += f' <span class="chip {st}">{st}</span>'
        p.append(f'<tr><td class="rid">{name}</td>')
        if s is None:
            p.append(
                '<td class="n dim">–</td>' * 6
                + '<td class="dim">–</td>'
                + ('<td class="n dim">–</td>' * 2 if labels else "")
            )
        else:
            width = 100 * s["fired"] / max_rate
            open_ = f' <span class="chip changed">+{s["open_at_end"]} open</span>' if s["open_at_end"] else ""
            noisy = (
                "<br>".join(
                    f'<span title="{_e(group_text(g["group"]))}">{_e(_values(g["group"]))}</span> <span class="dim">×{g["firings"]}</span>'
                    for g in s["noisiest"]
                )
                or '<span class="dim">–</span>'
            )
            p.append(
                f'<td class="n"><b>{s["fired"]}</b><div class="track"><div class="bar" style="width:{width:.0f}%"></div></div></td>'
                f'<td class="n">{s["resolved"]}{open_}</td><td class="n">{s["groups"]}</td>'
                f'<td class="n">{fmt.rate(s["alerts_per_hour"])}</td><td class="n">{_e(fmt.duration(s["firing_ms"]))}</td>'
                f'<td class="n">{s["breaker_opens"] if s["breaker"] else "<span class=dim>–</span>"}</td>'
                f'<td class="groups">{noisy}</td>'
            )
            if labels:
                sc = s["score"]
                if sc is None:
                    p.append('<td class="n dim">–</td><td class="n dim">–</td>')
                else:
                    p.append(
                        f'<td class="n">{fmt.pct(sc["precision"])} <span class="dim">{sc["true_positives"]}/{sc["true_positives"] + sc["false_positives"]}</span></td>'
                        f'<td class="n">{fmt.pct(sc["recall"])} <span class="dim">{sc["detected"]}/{sc["anomalies"]}</span></td>'
                    )
        p.append("</tr>")
    p.append(
        f'</tbody><tfoot><tr><td>total</td><td class="n">{tot["fired"]}</td><td class="n">{tot["resolved"]}</td>'
        f'<td class="n">{tot["groups"]}</td><td class="n">{fmt.rate(tot["alerts_per_hour"])}</td>'
        f'<td class="n">{_e(fmt.duration(tot["firing_ms"]))}</td><td class="n">{tot["breaker_opens"]}</td><td></td>'
    )
    if labels:
        sc = tot["score"] or {}
        p.append(f'<td class="n">{fmt.pct(sc.get("precision"))}</td><td class="n">{fmt.pct(sc.get("recall"))}</td>')
    p.append("</tr></tfoot></table></div>")

    # diff
    if diff:
        p.append(
            '<h2>Changes against the baseline <span class="sub">episodes matched by rule, group and start time</span></h2>'
        )
        p.append(
            '<div class="panel"><table><thead><tr><th>rule</th><th>rule change</th><th class="n">only new</th>'
            '<th class="n">only old</th><th class="n">in both</th><th class="n">end differently</th></tr></thead><tbody>'
        )
        for rid, dr in diff["rules"].items():
            st = dr["status"]
            chip = f'<span class="chip {st}">{st}</span>' if st != "unchanged" else '<span class="dim">unchanged</span>'
            p.append(
                f'<tr><td><a href="#{_anchor(rid)}">{_e(rid)}</a></td><td>{chip}</td>'
                f'<td class="n">{_delta(dr["only_new"], "plus", "+")}</td><td class="n">{_delta(dr["only_old"], "minus", "−")}</td>'
                f'<td class="n">{dr["both"]}</td><td class="n">{_delta(dr["ended_differently"], "", "")}</td></tr>'
            )
        p.append("</tbody></table></div>")
        changed = [(rid, dr) for rid, dr in diff["rules"].items() if dr["only_new"] or dr["only_old"]]
        small = sum(dr["only_new"] + dr["only_old"] for _, dr in changed) <= 12
        for rid, dr in changed:
            rows = [("new", e) for e in dr["new_episodes"]] + [("old", e) for e in dr["old_episodes"]]
            rows.sort(key=lambda r: (r[1]["started_at"], group_key(r[1]["group"]), r[0]))
            p.append(
                f'<details class="eps"{" open" if small else ""}><summary><b>{_e(rid)}</b> '
                f"{_delta(dr['only_new'], 'plus', '+')} only new &nbsp;{_delta(dr['only_old'], 'minus', '−')} only old</summary>"
                '<div class="panel"><table><thead><tr><th></th><th>group</th><th>started</th><th>resolved</th>'
                "<th>message</th></tr></thead><tbody>"
            )
            for which, e in rows[:MAX_DIFF_ROWS]:
                chip = (
                    '<span class="chip added">only new</span>'
                    if which == "new"
                    else '<span class="chip removed">only old</span>'
                )
                p.append(
                    f'<tr><td>{chip}</td><td class="mono">{_e(group_text(e["group"]))}</td>'
                    f'<td class="mono nw">{_e(_ts_text(e["started_at"]))}</td><td class="mono nw">{_e(_ts_text(e["resolved_at"]))}</td>'
                    f"<td>{_e(e['message'])}</td></tr>"
                )
            p.append("</tbody></table></div>")
            if len(rows) > MAX_DIFF_ROWS:
                p.append(f'<div class="note">and {len(rows) - MAX_DIFF_ROWS} more (all are in the JSON report).</div>')
            p.append("</details>")

    # rules across sources and over rules
    seqs = {rid: s["outcomes"] for rid, s in cur["rules"].items() if "outcomes" in s}
    if seqs:
        p.append(
            '<h2>Sequence outcomes <span class="sub">how the expectations that ended in the input ended</span></h2>'
        )
        p.append(
            '<div class="panel"><table><thead><tr><th>rule</th><th class="n">matched</th><th class="n">mismatched</th>'
            '<th class="n">missed</th></tr></thead><tbody>'
        )
        for rid, o in seqs.items():
            p.append(
                f'<tr><td><a href="#{_anchor(rid)}">{_e(rid)}</a></td><td class="n">{o["matched"]}</td>'
                f'<td class="n">{o["mismatched"]}</td><td class="n">{o["missed"]}</td></tr>'
            )
        p.append("</tbody></table></div>")
    incidents = [e for rr in bt.current.rules.values() for e in rr.episodes if e.inputs]
    if incidents:
        p.append(
            '<h2>Correlated incidents <span class="sub">episodes of correlate rules, with the input alerts '
            "firing when they fired</span></h2>"
        )
        p.append(
            '<div class="panel"><table><thead><tr><th>rule</th><th>group</th><th>started</th><th>resolved</th>'
            "<th>inputs</th></tr></thead><tbody>"
        )
        for e in sorted(incidents, key=lambda e: (e.start, e.rule_id))[:MAX_DIFF_ROWS]:
            p.append(
                f'<tr><td><a href="#{_anchor(e.rule_id)}">{_e(e.rule_id)}</a></td>'
                f'<td class="mono">{_e(group_text(e.group))}</td><td class="mono nw">{_e(_ts(e.start))}</td>'
                f'<td class="mono nw">{_e(_ts(e.end))}</td><td>{_e(e.inputs)}</td></tr>'
            )
        p.append("</tbody></table></div>")

    # labels
    if labels:
        p.append(
            f'<h2>Labelled anomalies <span class="sub">{labels["events"]} labelled events; '
            f"a gap over {_e(fmt.duration(labels['gap_ms']))} starts a new anomaly</span></h2>"
        )
        p.append(
            '<div class="panel"><table><thead><tr><th>anomaly</th><th>kind</th><th>from</th><th>to</th>'
            '<th class="n">events</th><th>detected by</th></tr></thead><tbody>'
        )
        for a in labels["anomalies"]:
            det = (
                "".join(f'<a class="chip tp" href="#{_anchor(r)}">{_e(r)}</a>' for r in a["detected_by"])
                or '<span class="chip miss">missed</span>'
            )
            p.append(
                f'<tr><td class="mono">{_e(a["id"])}</td><td>{_e(a["kind"])}</td><td class="mono">{_e(_ts_text(a["start"]))}</td>'
                f'<td class="mono">{_e(_ts_text(a["end"]))}</td><td class="n">{a["events"]}</td><td>{det}</td></tr>'
            )
        p.append("</tbody></table></div>")

    # timelines
    p.append('<h2>Timelines</h2><div class="legend">')
    if diff:
        p.append(
            '<span><i style="background:var(--blue)"></i>in both</span><span><i style="background:var(--green)"></i>only with the new rules</span>'
            '<span><i style="background:var(--red-l);outline:1.5px dashed var(--red);outline-offset:-1.5px"></i>only with the baseline</span>'
        )
    else:
        p.append('<span><i style="background:var(--blue)"></i>firing episode</span>')
    p.append('<span><i class="tri"></i>still firing at the end</span>')
    if labels:
        p.append(
            '<span><i style="background:rgba(245,165,36,.3);border-left:2px solid var(--amber)"></i>labelled anomaly of the rule\'s kind</span>'
            '<span><i class="dot" style="background:#12a150"></i>true / <i class="dot" style="background:#d92d20;margin-left:4px"></i>false positive</span>'
        )
    p.append("<span>hover a bar for details</span></div>")
    for rid in rids:
        s = cur["rules"].get(rid) or (base["rules"][rid] if base else None)
        assert s is not None
        rr = bt.current.rules.get(rid)
        eps = list(rr.episodes) if rr else []
        if bt.baseline is not None and rid in bt.baseline.rules:
            eps += [e for e in bt.baseline.rules[rid].episodes if status.get(e.key) == "old"]
        rule = (rr or bt.baseline.rules[rid]).rule  # type: ignore[union-attr]
        in_cur = rid in cur["rules"]
        stats = (
            (
                f"<b>{s['fired']}</b> fired · <b>{s['groups']}</b> groups · <b>{_e(fmt.duration(s['firing_ms']))}</b> firing"
                + (f" · <b>{s['breaker_opens']}</b> breaker opens" if s["breaker"] else "")
            )
            if in_cur
            else "removed in the new rules"
        )
        p.append(
            f'<div class="rule" id="{_anchor(rid)}"><div class="top"><div><h3>{_e(rid)}</h3></div>'
            f'<div class="stats">{stats}</div></div>'
        )
        desc = rule.description or ""
        p.append(f'<div class="desc">{_chips(s)} {_e(desc)}</div>')
        if eps:
            p.append(timeline(bt, rid, eps, status, s.get("kind") if labels else None))
        else:
            p.append('<div class="empty">No alerts over the input.</div>')
        p.append("</div>")
    p.append(
        "<footer>anomalyd backtest · report version "
        f"{d['report_version']} · times are event time (UTC)</footer></main></body></html>\n"
    )
    return "".join(p)


def _ts_text(s: str | None) -> str:
    return "open at end" if s is None else s.replace("T", " ").replace("Z", "")


def _values(group: dict) -> str:
    return " · ".join(str(v) for v in group.values()) if group else "(all)"


def _delta(n: int, cls: str, sign: str) -> str:
    if not n:
        return '<span class="dim">0</span>'
    return f'<span class="delta {cls}">{sign}{n}</span>'


__all__ = ["render", "timeline"]
