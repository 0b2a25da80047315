"""The PromQL name extraction the metric-reference test relies on: metric names in, everything else out."""

from __future__ import annotations

import pytest

from forewarn.promql_names import exported_names, metric_names


@pytest.mark.parametrize(("expr", "names"), [
    ("up", {"up"}),
    ('sum by (le, notifier) (rate(forewarn_x_seconds_bucket{notifier="slack", job=~"a|b"}[$__rate_interval]))',
     {"forewarn_x_seconds_bucket"}),
    ("histogram_quantile(0.99, sum without (instance) (rate(a_bucket[5m])))", {"a_bucket"}),
    ("a / on (machine_type) group_left (feature) b", {"a", "b"}),
    ("sum(rate(a_total[10m])) or on () vector(0) == 0 and on() c > bool 1e3", {"a_total", "c"}),
    ("a offset 5m unless ignoring(replica) b @ start()", {"a", "b"}),
    ('label_replace(a, "dst", "$1", "src", "(.*) and b")', {"a"}),
    ('{__name__="by_name_total", service!=""}', {"by_name_total"}),
    ("max_over_time(a[1h:5m]) - deriv(forewarn:recorded:sum[10m]) > Inf", {"a", "forewarn:recorded:sum"}),
    ("sum by (action, machine_type) (increase(m{outcome!~\"ok|x\"}[${window}]))", {"m"}),
])
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exported_names_include_suffixes_and_childless_families() -> None:
    page = "\n".join([
        "# HELP c_total Readings.", "# TYPE c_total counter",  # labelled, no child yet: no sample line
        "# TYPE h_seconds histogram", 'h_seconds_bucket{le="+Inf"} 0.0', "h_seconds_count 0.0",
        "# TYPE g gauge", "g 1.0", 'extra{a="b"} 2',
    ])
    names = exported_names(page)
    assert {"c_total", "h_seconds_bucket", "h_seconds_sum", "h_seconds_count", "g", "extra"} <= names
    assert "h_seconds" not in names and "c" not in names
