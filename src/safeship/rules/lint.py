"""`safeship rules lint`: the rule defects `promtool check rules` lets through.

promtool checks syntax. These checks look at meaning, each finding naming the
file, group, rule and line, what is wrong and how to fix it:

- `template-label`: a `{{ $labels.X }}` in labels/annotations that the
  expression's outer aggregation drops (`sum(...)` without `by`, `by (a)`
  without X, `without (X)`), so it always renders empty. A binary operation
  between vectors keeps only the labels both sides keep. Reported only when the
  label is certainly gone; anything not understood counts as keeping it.
- `rate-of-gauge`: `rate`/`irate`/`increase` of a gauge, by Prometheus'
  metadata when given, else by name: counters end in `_total`, `_count`,
  `_sum` or `_bucket`; anything else "looks like a gauge".
- `short-range`: a range window under twice the scrape interval.
- `missing-for` / `absent-without-for`: an alert without `for` fires on a
  single evaluation; `absent()` then fires on one missed scrape or a restart.
- `no-comparison`: an expression with no comparison at its top level (and not
  `absent()`) returns a value for every series with data: it always fires.
- `missing-severity` / `bad-severity` / `missing-summary`.
- `duplicate-alert`: the same alert name twice (across groups and files), unless
  the two carry different `severity` labels (a warning and a critical threshold
  of one alert is a common, deliberate pattern).
- `rate-per-hour`: a per-second `rate()` of a rare-event counter compared with a
  number above 1, which was meant as a count per hour. The heuristic is limited
  to counters of rare events (names containing `deployment`, `rollback` or
  `smoke_test`): those happen a few times an hour, so a rate above 1/s is
  implausible, while request counters at tens per second are normal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safeship import bounded_yaml
from safeship.files import UnreadableFile, read_bounded
from safeship.prometheus.promql import AGGREGATIONS, Selector, parse_duration, selectors

DEFAULT_SCRAPE_INTERVAL = 15.0
Report = Callable[[str, str], None]
SEVERITIES = ("critical", "warning", "info")
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
RARE_EVENTS = re.compile(r"deployment|rollback|smoke_test", re.IGNORECASE)
"""Counters of events that happen a few times an hour: a rate above 1/s is a unit mistake."""

_TEMPLATE_LABEL = re.compile(
    r"\$labels\.([a-zA-Z_]\w*)|index\s+\$labels\s+\"([^\"]+)\"|\.Labels\.([a-zA-Z_]\w*)"
)


# --- findings and rule files ------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One defect of one rule."""

    file: str
    group: str | None
    rule: str | None
    line: int | None
    check: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "group": self.group,
            "rule": self.rule,
            "line": self.line,
            "check": self.check,
            "message": self.message,
        }

    def render(self) -> str:
        """`file:line: group/rule: message [check]`, one line."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        who = "/".join(p for p in (self.group, self.rule) if p)
        return f"{where}: {who + ': ' if who else ''}{self.message} [{self.check}]"


class RulesFileError(Exception):
    """A rule file that cannot be read, is not YAML, or is not a Prometheus rule file."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Rule:
    """One alerting or recording rule, with where it is written."""

    file: str
    group: str
    line: int  # 1-based line of the rule's first key
    expr: str
    alert: str | None = None
    record: str | None = None
    for_: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.alert or self.record or "?"


def load_rules(path: str | Path) -> list[Rule]:
    """The rules of one Prometheus rule file (raises RulesFileError naming file and line)."""
    file = str(path)
    try:
        text = read_bounded(Path(path), bounded_yaml.MAX_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError, UnreadableFile) as exc:
        raise RulesFileError(file, None, f"cannot read: {exc}") from exc
    return parse_rules(text, file)


def parse_rules(text: str, file: str = "<rules>") -> list[Rule]:
    """The rules of a rule file's text; `file` names it in findings and errors."""
    too_large = bounded_yaml.check_limits(text)
    if too_large is not None:
        raise RulesFileError(file, too_large.line, f"refused: {too_large.problem}")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None:
            problem = f"{context} (line {context_mark.line + 1}): {problem}"
        raise RulesFileError(file, line, f"invalid YAML: {problem}") from exc
    if root is None:
        return []
    groups = _get(_mapping(root, file, "the file"), "groups")
    if groups is None:
        raise RulesFileError(file, _line(root), "no `groups:` (not a Prometheus rule file)")
    rules: list[Rule] = []
    for group_node in _sequence(groups, file, "`groups`").value:
        group = _mapping(group_node, file, "a group")
        group_name = _scalar(_get(group, "name"), file, "a group's `name`")
        if group_name is None:
            raise RulesFileError(file, _line(group_node), "a group without `name`")
        rule_nodes = _get(group, "rules")
        if rule_nodes is None:
            continue
        for rule_node in _sequence(rule_nodes, file, f"group {group_name}'s `rules`").value:
            rules.append(_rule(rule_node, file, group_name))
    return rules


def _rule(node: yaml.Node, file: str, group: str) -> Rule:
    rule = _mapping(node, file, f"a rule of group {group}")
    alert = _scalar(_get(rule, "alert"), file, "`alert`")
    record = _scalar(_get(rule, "record"), file, "`record`")
    expr = _scalar(_get(rule, "expr"), file, "`expr`")
    if alert is None and record is None:
        raise RulesFileError(file, _line(node), "a rule with neither `alert` nor `record`")
    if expr is None:
        raise RulesFileError(file, _line(node), f"rule {alert or record} has no `expr`")
    return Rule(
        file=file,
        group=group,
        line=_line(node),
        expr=expr,
        alert=alert,
        record=record,
        for_=_scalar(_get(rule, "for"), file, "`for`"),
        labels=_string_map(_get(rule, "labels"), file, "`labels`"),
        annotations=_string_map(_get(rule, "annotations"), file, "`annotations`"),
    )


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _mapping(node: yaml.Node, file: str, what: str) -> yaml.MappingNode:
    if not isinstance(node, yaml.MappingNode):
        raise RulesFileError(file, _line(node), f"{what} should be a mapping")
    return node


def _sequence(node: yaml.Node, file: str, what: str) -> yaml.SequenceNode:
    if not isinstance(node, yaml.SequenceNode):
        raise RulesFileError(file, _line(node), f"{what} should be a list")
    return node


def _get(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v  # type: ignore[no-any-return]
    return None


def _scalar(node: yaml.Node | None, file: str, what: str) -> str | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None
    if not isinstance(node, yaml.ScalarNode):
        raise RulesFileError(file, _line(node), f"{what} should be a string")
    return str(node.value)


def _string_map(node: yaml.Node | None, file: str, what: str) -> dict[str, str]:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return {}
    mapping = _mapping(node, file, what)
    return {str(_scalar(k, file, what)): _scalar(v, file, what) or "" for k, v in mapping.value}


# --- a PromQL expression tree (enough to reason about labels and comparisons) -----


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Str:
    value: str


@dataclass(frozen=True)
class VectorSelector:
    text: str
    selector: Selector | None


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Aggregation:
    op: str
    args: tuple[Node, ...]
    grouping: str | None  # "by", "without" or None
    labels: tuple[str, ...]

    def describe(self) -> str:
        if self.grouping is None:
            return f"`{self.op}(...)` without `by`"
        return f"`{self.op} {self.grouping} ({', '.join(self.labels)})`"


@dataclass(frozen=True)
class Binary:
    op: str
    lhs: Node
    rhs: Node
    bool_: bool = False
    on: tuple[str, ...] | None = None
    ignoring: tuple[str, ...] | None = None
    group: str | None = None  # "left" or "right"
    include: tuple[str, ...] = ()


Node = Num | Str | VectorSelector | Call | Aggregation | Binary


class PromQLSyntaxError(ValueError):
    pass


_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])\d*)*)
    |(?P<ident>[a-zA-Z_:][\w:]*)
    |(?P<braces>\{(?:[^}"']|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')*\})
    |(?P<range>\[[^\]]*\])
    |(?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>(),@=])
    """,
    re.VERBOSE,
)
_PRECEDENCE: list[frozenset[str]] = [
    frozenset({"or"}),
    frozenset({"and", "unless"}),
    COMPARISONS,
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%", "atan2"}),
    frozenset({"^"}),
]


def parse_expr(expr: str) -> Node:
    """The expression tree of `expr` (raises PromQLSyntaxError on what it does not read)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise PromQLSyntaxError(f"unexpected {expr[pos]!r} at {pos}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group(0)))
    parser = _Parser(tokens)
    node = parser.expression(0)
    if parser.peek() is not None:
        raise PromQLSyntaxError(f"unexpected {parser.peek()!r}")
    return node


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, ahead: int = 0) -> str | None:
        j = self.i + ahead
        return self.tokens[j][1] if j < len(self.tokens) else None

    def kind(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.lower() != expected):
            raise PromQLSyntaxError(f"expected {expected or 'more'}, got {token!r}")
        self.i += 1
        return token

    def expression(self, level: int) -> Node:
        if level == len(_PRECEDENCE):
            return self.unary()
        lhs = self.expression(level + 1)
        while (token := self.peek()) is not None and token.lower() in _PRECEDENCE[level]:
            op = self.take().lower()
            modifiers = self.binary_modifiers()
            # `^` is right-associative; the others are left-associative
            rhs = self.expression(level if op == "^" else level + 1)
            lhs = Binary(op, lhs, rhs, **modifiers)
        return lhs

    def binary_modifiers(self) -> dict[str, Any]:
        modifiers: dict[str, Any] = {}
        if (self.peek() or "").lower() == "bool":
            self.take()
            modifiers["bool_"] = True
        if (self.peek() or "").lower() in ("on", "ignoring"):
            which = self.take().lower()
            modifiers[which] = self.label_list()
        if (self.peek() or "").lower() in ("group_left", "group_right"):
            modifiers["group"] = self.take().lower().removeprefix("group_")
            modifiers["include"] = self.label_list() if self.peek() == "(" else ()
        return modifiers

    def label_list(self) -> tuple[str, ...]:
        self.take("(")
        labels: list[str] = []
        while self.peek() != ")":
            labels.append(self.take().strip("\"'"))
            if self.peek() == ",":
                self.take()
        self.take(")")
        return tuple(labels)

    def unary(self) -> Node:
        if self.peek() in ("-", "+"):
            sign = self.take()
            operand = self.unary()
            if isinstance(operand, Num):
                return Num(-operand.value if sign == "-" else operand.value)
            return operand
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            token = (self.peek() or "").lower()
            if self.kind() == "range":  # a subquery: same labels
                self.take()
            elif token == "offset":
                self.take()
                if self.peek() == "-":
                    self.take()
                self.take()
            elif token == "@":
                self.take()
                self.take()
                if self.peek() == "(":
                    self.take("(")
                    self.take(")")
            else:
                return node

    def primary(self) -> Node:
        kind, token = self.kind(), self.peek()
        if token is None:
            raise PromQLSyntaxError("unexpected end of expression")
        if token == "(":
            self.take()
            inner = self.expression(0)
            self.take(")")
            return inner
        if kind == "number":
            self.take()
            try:
                return Num(
                    float(int(token, 16)) if token.lower().startswith("0x") else float(token)
                )
            except ValueError:
                seconds = parse_duration(token)
                if seconds is None:
                    raise PromQLSyntaxError(f"not a number: {token!r}") from None
                return Num(seconds)
        if kind == "string":
            self.take()
            return Str(token[1:-1])
        if kind == "braces":
            return self.selector("")
        if kind != "ident":
            raise PromQLSyntaxError(f"unexpected {token!r}")
        lowered = token.lower()
        if lowered in ("inf", "nan") and self.peek(1) != "(":
            self.take()
            return Num(math.inf if lowered == "inf" else math.nan)
        if lowered in AGGREGATIONS and (
            self.peek(1) == "(" or (self.peek(1) or "").lower() in ("by", "without")
        ):
            return self.aggregation()
        if self.peek(1) == "(":
            self.take()
            return Call(lowered, self.arguments())
        return self.selector(self.take())

    def aggregation(self) -> Aggregation:
        op = self.take().lower()
        grouping: str | None = None
        labels: tuple[str, ...] = ()
        if (self.peek() or "").lower() in ("by", "without"):
            grouping = self.take().lower()
            labels = self.label_list()
        args = self.arguments()
        if grouping is None and (self.peek() or "").lower() in ("by", "without"):
            grouping = self.take().lower()
            labels = self.label_list()
        return Aggregation(op, args, grouping, labels)

    def arguments(self) -> tuple[Node, ...]:
        self.take("(")
        args: list[Node] = []
        while self.peek() != ")":
            args.append(self.expression(0))
            if self.peek() == ",":
                self.take()
            elif self.peek() != ")":
                raise PromQLSyntaxError(f"expected , or ), got {self.peek()!r}")
        self.take(")")
        return tuple(args)

    def selector(self, name: str) -> VectorSelector:
        text = name
        if self.kind() == "braces":
            text += self.take()
        if self.kind() == "range":
            text += self.take()
        found = selectors(text)
        return VectorSelector(text, found[0] if found else None)


# --- which labels an expression's result can carry --------------------------------


@dataclass(frozen=True)
class LabelSet:
    """An upper bound on a result's labels: at most `kept` (when closed), never `dropped`.

    `kept` is None when any label may survive (a plain selector, or anything not
    understood); `dropped` then lists the labels certainly removed.
    """

    kept: frozenset[str] | None = None
    dropped: frozenset[str] = frozenset()
    because: tuple[str, ...] = ()  # what removed the labels, for messages

    def drops(self, label: str) -> bool:
        if self.kept is not None:
            return label not in self.kept
        return label in self.dropped

    def both(self, other: LabelSet) -> LabelSet:
        """The labels of a vector-vector match: only those both sides keep."""
        because = self.because + other.because
        if self.kept is not None and other.kept is not None:
            return LabelSet(self.kept & other.kept, because=because)
        if self.kept is not None:
            return LabelSet(self.kept - other.dropped, because=because)
        if other.kept is not None:
            return LabelSet(other.kept - self.dropped, because=because)
        return LabelSet(None, self.dropped | other.dropped, because)

    def either(self, other: LabelSet) -> LabelSet:
        """The labels of `a or b`: those either side keeps."""
        because = self.because + other.because
        if self.kept is not None and other.kept is not None:
            return LabelSet(self.kept | other.kept, because=because)
        if self.kept is not None:
            return LabelSet(None, other.dropped - self.kept, because)
        if other.kept is not None:
            return LabelSet(None, self.dropped - other.kept, because)
        return LabelSet(None, self.dropped & other.dropped, because)

    def plus(self, labels: Iterable[str]) -> LabelSet:
        added = frozenset(labels)
        if self.kept is None:
            return LabelSet(None, self.dropped - added, self.because)
        return LabelSet(self.kept | added, because=self.because)

    def minus(self, labels: Iterable[str], because: str) -> LabelSet:
        removed = frozenset(labels)
        if self.kept is None:
            return LabelSet(None, self.dropped | removed, (*self.because, because))
        return LabelSet(self.kept - removed, because=(*self.because, because))


ANY_LABELS = LabelSet()
NO_LABELS = LabelSet(frozenset())
_KEEPS_SERIES = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})
_KEEPS_LABELS = frozenset(
    {
        *("rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets"),
        *("abs", "ceil", "floor", "round", "sgn", "exp", "ln", "log2", "log10", "sqrt"),
        *("clamp", "clamp_min", "clamp_max", "predict_linear", "holt_winters", "timestamp"),
        *("sort", "sort_desc", "histogram_quantile", "label_replace", "label_join"),
    }
)
"""Functions whose result keeps their vector argument's labels (minus `le`, plus a new one)."""


def result_labels(node: Node) -> LabelSet:
    """Which labels the result of `node` can carry (conservative: unsure means kept)."""
    if isinstance(node, Num | Str):
        return NO_LABELS
    if isinstance(node, VectorSelector):
        return ANY_LABELS
    if isinstance(node, Aggregation):
        inner = result_labels(node.args[-1]) if node.args else ANY_LABELS
        if node.op in _KEEPS_SERIES:
            return inner  # topk & co return their input series unchanged
        extra: tuple[str, ...] = ()
        if node.op == "count_values" and node.args and isinstance(node.args[0], Str):
            extra = (node.args[0].value,)
        if node.grouping == "without":
            return inner.minus(node.labels, node.describe()).plus(extra)
        kept = frozenset(node.labels if node.grouping == "by" else ()) | frozenset(extra)
        return LabelSet(kept, because=(*inner.because, node.describe()))
    if isinstance(node, Call):
        return _call_labels(node)
    return _binary_labels(node)


def _call_labels(node: Call) -> LabelSet:
    vectors = [a for a in node.args if not isinstance(a, Num | Str)]
    if node.name in ("vector", "time", "scalar", "pi") or not vectors:
        return NO_LABELS
    if node.name in ("absent", "absent_over_time"):
        return ANY_LABELS  # labels from the selector's equality matchers: not tracked
    inner = result_labels(vectors[0])
    if node.name not in _KEEPS_LABELS and not node.name.endswith("_over_time"):
        return ANY_LABELS  # a function not known here: assume it may add any label
    if node.name == "histogram_quantile":
        return inner.minus(("le",), "`histogram_quantile()`")
    if node.name in ("label_replace", "label_join"):
        strings = [a.value for a in node.args if isinstance(a, Str)]
        return inner.plus(strings[:1])
    return inner


def _binary_labels(node: Binary) -> LabelSet:
    lhs, rhs = result_labels(node.lhs), result_labels(node.rhs)
    scalar_l, scalar_r = _is_scalar(node.lhs), _is_scalar(node.rhs)
    if scalar_l and scalar_r:
        return NO_LABELS
    if scalar_l:
        return rhs
    if scalar_r:
        return lhs
    if node.op == "or":
        return lhs.either(rhs)
    if node.op in ("and", "unless"):
        return lhs
    if node.group is not None:
        one = lhs if node.group == "left" else rhs
        return one.plus(node.include)
    if node.on is not None:
        kept = LabelSet(frozenset(node.on), because=(f"`on ({', '.join(node.on)})`",))
        return lhs.both(kept)
    if node.ignoring is not None:
        return lhs.minus(node.ignoring, f"`ignoring ({', '.join(node.ignoring)})`")
    return lhs.both(rhs)


def _is_scalar(node: Node) -> bool:
    if isinstance(node, Num):
        return True
    if isinstance(node, Call):
        return node.name in ("scalar", "time", "pi")
    if isinstance(node, Binary):
        return _is_scalar(node.lhs) and _is_scalar(node.rhs)
    return False


def outer_aggregations(node: Node) -> list[Aggregation]:
    """The aggregations that shape the result: the outermost one on each side of each operator."""
    if isinstance(node, Aggregation):
        if node.op in _KEEPS_SERIES and node.args:
            return outer_aggregations(node.args[-1])
        return [node]
    if isinstance(node, Call):
        return [a for arg in node.args for a in outer_aggregations(arg)]
    if isinstance(node, Binary):
        return outer_aggregations(node.lhs) + outer_aggregations(node.rhs)
    return []


def template_labels(text: str) -> list[str]:
    """The `$labels.X` (and `index $labels "X"`) a template reads, in order, once each."""
    found: list[str] = []
    for match in _TEMPLATE_LABEL.finditer(text):
        label = next(g for g in match.groups() if g)
        if label not in found:
            found.append(label)
    return found


def filters(node: Node) -> bool:
    """Whether `node` keeps only some series (a comparison), so an alert on it can stay quiet."""
    if isinstance(node, Binary):
        if node.op in COMPARISONS:
            return not node.bool_ or filters(node.lhs) or filters(node.rhs)
        if node.op == "or":
            return filters(node.lhs) and filters(node.rhs)
        if node.op == "unless":
            return filters(node.lhs)
        return filters(node.lhs) or filters(node.rhs)  # `and`, arithmetic: both must match
    if isinstance(node, Aggregation):
        return bool(node.args) and filters(node.args[-1])
    if isinstance(node, Call):
        return node.name in ("absent", "absent_over_time") or any(filters(a) for a in node.args)
    return False


def per_second_rate(node: Node) -> Selector | None:
    """The selector of `rate(x[...])` / `irate`, through unit-preserving aggregations."""
    if isinstance(node, Call) and node.name in ("rate", "irate") and node.args:
        arg = node.args[0]
        if isinstance(arg, VectorSelector):
            return arg.selector
        return None
    if isinstance(node, Aggregation) and node.op in ("sum", "min", "max", "avg") and node.args:
        return per_second_rate(node.args[-1])
    if isinstance(node, Call) and node.name in ("abs", "ceil", "floor", "round") and node.args:
        return per_second_rate(node.args[0])
    return None


def _comparisons(node: Node) -> Iterable[Binary]:
    if isinstance(node, Binary):
        if node.op in COMPARISONS:
            yield node
        yield from _comparisons(node.lhs)
        yield from _comparisons(node.rhs)
    elif isinstance(node, Aggregation | Call):
        for arg in node.args:
            yield from _comparisons(arg)


# --- the checks -------------------------------------------------------------------


def metric_types(metadata: Mapping[str, Sequence[Mapping[str, str]]]) -> dict[str, str]:
    """Metric name -> type (counter, gauge, histogram...) from `PrometheusClient.metadata()`."""
    types: dict[str, str] = {}
    for name, entries in metadata.items():
        kinds = {e.get("type", "") for e in entries} - {"", "unknown"}
        if len(kinds) == 1:
            types[name] = kinds.pop()
    return types


def _metric_type(metric: str, types: Mapping[str, str]) -> str | None:
    if metric in types:
        return types[metric]
    for suffix in COUNTER_SUFFIXES[1:]:  # histogram/summary series under their base name
        base = metric.removesuffix(suffix)
        if base != metric and types.get(base) in ("histogram", "summary", "gaugehistogram"):
            return types[base]
    return None


def lint_rules(
    rules: Sequence[Rule],
    *,
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
    types: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every finding for `rules` (one or more files: duplicates are looked for across all)."""
    findings: list[Finding] = []
    for rule in rules:
        findings.extend(lint_rule(rule, scrape_interval=scrape_interval, types=types))
    findings.extend(_duplicates(rules))
    findings.sort(key=lambda f: (f.file, f.line or 0, f.check))
    return findings


def lint_files(
    paths: Sequence[str | Path],
    *,
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
    types: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Load and lint rule files together (raises RulesFileError for the first bad file)."""
    rules = [rule for path in paths for rule in load_rules(path)]
    return lint_rules(rules, scrape_interval=scrape_interval, types=types)


def lint_rule(
    rule: Rule,
    *,
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
    types: Mapping[str, str] | None = None,
) -> list[Finding]:
    """The findings of one rule on its own (everything but duplicates)."""
    found: list[Finding] = []

    def report(check: str, message: str) -> None:
        found.append(Finding(rule.file, rule.group, rule.name, rule.line, check, message))

    for selector in selectors(rule.expr):
        _check_selector(selector, report, scrape_interval, types)
    if rule.alert is None:
        return found
    try:
        tree: Node | None = parse_expr(rule.expr)
    except PromQLSyntaxError:
        tree = None  # promtool reports syntax; the expression checks are skipped
    is_absent = re.search(r"\babsent(_over_time)?\s*\(", rule.expr) is not None
    if tree is not None:
        _check_templates(rule, tree, report)
        if not filters(tree):
            report(
                "no-comparison",
                "the expression has no comparison (>, <, >=, <=, ==, !=) at its top level, "
                "so it returns a value for every series with data and the alert always "
                "fires; compare it with a threshold, e.g. `(...) > 0.05`",
            )
        _check_rate_per_hour(tree, report)
    for_seconds = parse_duration(rule.for_.strip()) if rule.for_ else None
    if not rule.for_ or for_seconds == 0:
        if is_absent:
            report(
                "absent-without-for",
                "absent() without `for` fires on a single missed scrape or a Prometheus "
                "restart; add `for: 10m` (longer than a few scrape intervals)",
            )
        else:
            report(
                "missing-for",
                "no `for`: the alert fires on a single evaluation, so one bad scrape pages "
                "someone; add e.g. `for: 5m`",
            )
    severity = rule.labels.get("severity")
    if severity is None:
        report(
            "missing-severity",
            f"no `severity` label; add `severity: warning` (one of {'|'.join(SEVERITIES)}) "
            "so Alertmanager can route it",
        )
    elif severity not in SEVERITIES:
        report(
            "bad-severity",
            f"severity {severity!r} is not one of {'|'.join(SEVERITIES)}; "
            "Alertmanager routes only those",
        )
    if not rule.annotations.get("summary", "").strip():
        report(
            "missing-summary",
            "no `summary` annotation; add a one-line summary of what is wrong (and where)",
        )
    return found


def _check_selector(
    selector: Selector,
    report: Report,
    scrape_interval: float,
    types: Mapping[str, str] | None,
) -> None:
    metric = selector.metric
    if selector.function in RATE_FUNCTIONS and metric is not None:
        known = _metric_type(metric, types) if types is not None else None
        if known == "gauge":
            report(
                "rate-of-gauge",
                f"{selector.function}() of {metric}, a gauge (Prometheus metadata): "
                f"{selector.function}() is only meaningful for counters; use the gauge's "
                "value, delta() or deriv() instead",
            )
        elif known is None and not metric.endswith(COUNTER_SUFFIXES):
            report(
                "rate-of-gauge",
                f"{selector.function}() of {metric}, which looks like a gauge (counters end "
                f"in {', '.join(COUNTER_SUFFIXES)}); use the value, delta() or deriv() for a "
                "gauge, or rename the counter to end in _total",
            )
    if selector.range_seconds is not None and selector.range_seconds < 2 * scrape_interval:
        suggested = _duration(max(4 * scrape_interval, 60))
        report(
            "short-range",
            f"the range of {selector.render()} ({_duration(selector.range_seconds)}) is under "
            f"twice the scrape interval ({_duration(scrape_interval)}), so it often holds "
            f"fewer than two samples and yields no data; use [{suggested}] or more",
        )


def _check_templates(rule: Rule, tree: Node, report: Report) -> None:
    labels = result_labels(tree)
    if labels == ANY_LABELS:
        return
    for where, values in (("labels", rule.labels), ("annotations", rule.annotations)):
        for key, template in values.items():
            for label in template_labels(template):
                if not labels.drops(label):
                    continue
                cause = _drop_cause(tree, label, labels)
                report(
                    "template-label",
                    f"{{{{ $labels.{label} }}}} in {where}.{key} is always empty: {cause}. "
                    f"Add `by ({label})` to the aggregation (to both sides of a binary "
                    "operator), or remove the template",
                )


def _drop_cause(tree: Node, label: str, labels: LabelSet) -> str:
    culprits = [
        a.describe()
        for a in outer_aggregations(tree)
        if (a.grouping == "by" and label not in a.labels)
        or (a.grouping == "without" and label in a.labels)
        or a.grouping is None
    ]
    causes = list(dict.fromkeys(culprits or list(labels.because)))
    if not causes:
        return f"the expression's result has no `{label}` label"
    return f"the expression's result has no `{label}` label (dropped by {', '.join(causes)})"


def _check_rate_per_hour(tree: Node, report: Report) -> None:
    for comparison in _comparisons(tree):
        for side, other in ((comparison.lhs, comparison.rhs), (comparison.rhs, comparison.lhs)):
            selector = per_second_rate(side)
            if selector is None or selector.metric is None or not isinstance(other, Num):
                continue
            if not RARE_EVENTS.search(selector.metric) or not other.value > 1:
                continue
            window = _duration(selector.range_seconds) if selector.range_seconds else "1h"
            report(
                "rate-per-hour",
                f"rate() is per second; compare increase(...[1h]) for a count per hour: "
                f"rate({selector.metric}[{window}]) {comparison.op} {other.value:g} means "
                f"{other.value * 3600:g} per hour; replace the rate() with "
                f"`increase({selector.render()}[1h])`",
            )


def _duplicates(rules: Sequence[Rule]) -> list[Finding]:
    found: list[Finding] = []
    seen: dict[tuple[str, str | None], Rule] = {}
    for rule in rules:
        if rule.alert is None:
            continue
        key = (rule.alert, rule.labels.get("severity"))
        first = seen.setdefault(key, rule)
        if first is not rule:
            found.append(
                Finding(
                    rule.file,
                    rule.group,
                    rule.alert,
                    rule.line,
                    "duplicate-alert",
                    f"alert {rule.alert} is already defined at {first.file}:{first.line} "
                    f"(group {first.group}); the two fire as one alert and override each "
                    "other's annotations: rename one, or merge them",
                )
            )
    return found


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
