from forewarn.bench.timeline import Timeline, slowest_window


def test_slowest_window_finds_where_lag_rose_and_compares_columns() -> None:
    t = list(range(200))
    lag = [100] * 120 + [100 + 1000 * i for i in range(40)] + [100] * 40
    busy = [0.5] * 120 + [1.0] * 40 + [0.5] * 40
    summary = slowest_window({"t": t, "lag": lag, "busy": busy}, width=30)
    assert summary is not None
    assert 120 <= summary["from_t"] <= 130
    assert summary["lag_rise"] == 30_000
    assert summary["columns"]["busy"]["window_mean"] > summary["columns"]["busy"]["run_mean"]


def test_slowest_window_needs_more_samples_than_its_width() -> None:
    assert slowest_window({"t": [0, 1], "lag": [0, 5]}, width=60) is None


def test_columns_stay_aligned_when_a_column_starts_late() -> None:
    timeline = Timeline(redis_url=None, metrics_urls={})
    timeline.sample(0.0, lag=1)
    timeline.sample(1.0, lag=2, extra=7)
    timeline.close()
    columns = timeline.columns()
    assert columns["t"] == [0.0, 1.0]
    assert columns["extra"] == [None, 7]
    assert columns["sys_cores.busy"][0] is None and columns["sys_cores.busy"][1] is not None
    assert all(len(column) == 2 for column in columns.values())


def test_the_timeline_plot_is_written(tmp_path) -> None:
    from forewarn.bench.timeline import plot_timeline

    columns = {"t": [0.0, 1.0, 2.0], "lag": [0, 10, 5], "cpu_cores.features": [None, 0.5, 0.6],
               "sys_cores.busy": [None, 1.0, 1.1], "batch_busy.features": [None, 0.3, None]}
    plot_timeline(columns, tmp_path / "t.png", "test")
    assert (tmp_path / "t.png").stat().st_size > 1000
