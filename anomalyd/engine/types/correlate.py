"""correlate: the live alerts of other rules are its input (contract
section 3c). Seventeen failed transfers of one kind, or three error codes
bursting on one payment method at once, are one incident (P0), and its
breaker can freeze the channel.

The figure of a group is the number of the input rules' alerts firing in it
at that event time (`count: groups`, firing (rule, group) pairs) or the
number of distinct input rules firing in it (`count: rules`). It changes
only when an input alert fires or resolves, and is judged at that moment.
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Literal

from pydantic import Field

from ..lifecycle import Output
from ..rules.model import CompareOp, RuleCore, _Strict
from ..timeutil import parse_ts
from .base import NUMERIC_OPS, Runner


class Tagged(_Strict):
    """Input rules chosen by their tags rather than by id."""

    tags: list[str] = Field(min_length=1, description="Every rule carrying one of these tags (other than this one)")


class CorrelateRule(RuleCore):
    type: Literal["correlate"]
    rules: list[str] | Tagged = Field(description="The input rules: their ids, or {tags: [...]}")
    count: Literal["groups", "rules"] = Field(
        default="groups", description="groups: firing (rule, group) pairs; rules: distinct rules firing"
    )
    op: CompareOp
    value: int = Field(ge=0)

    @property
    def source(self) -> str:
        return "alerts"

    def sources(self) -> list[str]:
        return []


def inputs_of(rule: CorrelateRule, rules: Iterable[Any]) -> list[str]:
    """The ids of the rules whose alerts `rule` reads, among `rules`. A live
    rule never reads a shadow rule's alerts (contract section 3c)."""
    if isinstance(rule.rules, list):
        by_id = {r.id: r for r in rules}
        return [i for i in rule.rules if i in by_id and (rule.mode == "shadow" or by_id[i].mode == "live")]
    want = set(rule.rules.tags)
    return [
        r.id for r in rules if r.id != rule.id and want & set(r.tags) and (rule.mode == "shadow" or r.mode == "live")
    ]


def with_inputs(chosen: list[Any], rules: list[Any]) -> list[Any]:
    """`chosen` and every rule a correlate rule among them reads, transitively."""
    by_id = {r.id: r for r in rules}
    ids = {r.id for r in chosen}
    todo = [r for r in chosen if isinstance(r, CorrelateRule)]
    while todo:
        for rid in inputs_of(todo.pop(), rules):
            if rid not in ids:
                ids.add(rid)
                if isinstance(by_id[rid], CorrelateRule):
                    todo.append(by_id[rid])
    return [r for r in rules if r.id in ids]


def find_cycle(rules: Iterable[Any]) -> list[str] | None:
    """A chain of correlate rules that reads itself (a -> b -> a), if any."""
    rules = list(rules)
    edges = {r.id: inputs_of(r, rules) for r in rules if isinstance(r, CorrelateRule)}
    done: set[str] = set()

    def visit(rid: str, path: list[str]) -> list[str] | None:
        if rid in path:
            return path[path.index(rid) :] + [rid]
        if rid in done or rid not in edges:
            return None
        for nxt in edges[rid]:
            found = visit(nxt, path + [rid])
            if found:
                return found
        done.add(rid)
        return None

    for rid in sorted(edges):
        found = visit(rid, [])
        if found:
            return found
    return None


class CorrelateRunner(Runner):
    RESOLVED = "{rule_id} resolved{where}: {count} firing, no longer {op} {threshold}"
    rule: CorrelateRule

    def __init__(self, rule: CorrelateRule, config, wake=None):
        super().__init__(rule, config, wake)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value
        self.by_rules = rule.count == "rules"
        self.fields = list(rule.group_by)
        # group key -> {(input rule id, fingerprint): (alert id, "rule (k=v)")}.
        # Not a GroupStore: a group firing for hours must not be idle-evicted;
        # it is bounded by the inputs' own caps on firing alerts.
        self.firing: dict[Hashable, dict[tuple[str, str], tuple[str, str]]] = {}

    def handlers(self) -> dict[str, Any]:
        return {}

    def key_of_group(self, group: dict) -> Any:
        f = self.fields
        if not f:
            return ""
        if len(f) == 1:
            return group.get(f[0])
        vals = tuple(group.get(x) for x in f)
        return None if None in vals else vals

    def on_alert(self, rec: dict, out: list[Output]) -> None:
        """An input rule's alert changed (fired or resolved) at its `ts`."""
        key = self.key_of_group(rec["group"])
        if key is None:
            self.skipped_no_group += 1
            return
        if self.owns is not None and not self.owns(key):
            return
        t = parse_ts(rec["ts"])
        pairs = self.firing.setdefault(key, {})
        pid = (rec["rule_id"], rec["fingerprint"])
        if rec["status"] == "firing":
            where = ", ".join(f"{k}={v}" for k, v in rec["group"].items())
            pairs[pid] = (rec["alert_id"], f"{rec['rule_id']} ({where})" if where else rec["rule_id"])
        else:
            pairs.pop(pid, None)
        n = len({rid for rid, _ in pairs}) if self.by_rules else len(pairs)
        evidence = [a for a, _ in pairs.values()]
        details = {"count": n, "alerts": "; ".join(sorted(text for _, text in pairs.values()))}
        if not pairs:
            del self.firing[key]
        holds = self.op(n, self.value)
        if holds or key in self.life.active or key in self.life.pending:
            self.life.update(key, holds, t, n, self.value, evidence, details, out)

    def forget_inputs(self, rule_ids: set[str]) -> None:
        """Input rules replaced or removed on a reload: their firing alerts
        are gone without a resolved record, so they stop counting (the figure
        is judged again at the next change)."""
        for key in list(self.firing):
            pairs = self.firing[key]
            for pid in [p for p in pairs if p[0] in rule_ids]:
                del pairs[pid]
            if not pairs:
                del self.firing[key]

    def groups(self) -> int:
        return len(self.firing)

    def dump_state(self) -> Any:
        return {"firing": [(k, [(p, list(v)) for p, v in pairs.items()]) for k, pairs in self.firing.items()]}

    def load_state(self, data: Any) -> None:
        self.firing = {k: {tuple(p): tuple(v) for p, v in pairs} for k, pairs in data["firing"]}


MODEL, RUNNER, DETAILS = CorrelateRule, CorrelateRunner, {"count", "alerts"}
