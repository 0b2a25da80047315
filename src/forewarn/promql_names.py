"""Which metrics a PromQL expression reads, and which metric names a /metrics page exports: what the
metric-reference test compares so that no dashboard panel or rule silently reads a metric nobody exports.

Not a full PromQL parser: strings, label matchers, range and subquery brackets, grouping clauses and
numbers are removed first; what is left that is neither a function, an aggregation, a keyword nor a
template variable is a metric name (``{__name__="x"}`` names ``x`` too).
"""

from __future__ import annotations

import re

KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "atan2", "inf", "nan", "start", "end",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]+)"')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TEMPLATE = re.compile(r"\$\{?\w+\}?")
_TOKEN = re.compile(r"(\d[\w.]*)|([A-Za-z_:][\w:]*)(\s*\()?")
# prometheus-client's exposition: the TYPE line names the family, samples carry these suffixes.
SUFFIXES = {
    "counter": ("", "_total", "_created"),  # text format 0.0.4 keeps _total in the family name
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects."""
    named = set(_NAME_MATCHER.findall(expr))
    text = _TEMPLATE.sub(" ", expr)
    # Matchers first (their values are strings), then strings left elsewhere (e.g. label_replace).
    while _BRACES.search(text):
        text = _BRACES.sub(" ", text)
    text = _STRING.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for match in _TOKEN.finditer(text):
        number, identifier, call = match.groups()
        if number is not None or call is not None:  # a literal, or a function / aggregation call
            continue
        if identifier.lower() in KEYWORDS:
            continue
        names.add(identifier)
    return names | named


def exported_names(exposition: str) -> set[str]:
    """Every sample name a /metrics page in the Prometheus text format can serve, from its TYPE lines (a
    labelled family with no child yet still declares itself) and from the samples themselves."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = (line.split() + ["untyped"])[:4]
            names.update(family + suffix for suffix in SUFFIXES.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
