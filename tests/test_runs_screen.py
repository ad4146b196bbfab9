"""The Runs screen (F4) and `workbench runs`: one row per run with the same columns and order,
sort, filter, the cursor across refreshes, sorts and deletes, and two runs' settings side by side.

Run folders are written as the engine writes them (tests/test_tui.write_run), with ids, configs and
start events that agree, so the table shows what a real runs folder shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import test_tui
from test_tui import make_app, wait_for, write_run

from helpers import fixed_runs_root
from workbench import cli
from workbench.run_diff import DIFFERS, compare_runs, render_text
from workbench.run_table import RowCache, filter_rows, format_parameters, parse_filter, read_row, sort_rows
from workbench.runs import Run, atomic_write_json

fixed_devices = test_tui.fixed_devices
runs_root = test_tui.runs_root


def real_run(root: Path, run_id: str, arch: str = "gru", dataset: str = "names", state: str = "finished",
             parameters: int = 12345, test: float | None = None, seconds: float = 100.0,
             settings: dict[str, Any] | None = None, epochs: int = 3) -> Run:
    """A run folder whose id, config and start event agree (``write_run`` writes names/gru), with a
    ``results.json`` holding ``test`` accuracy when given."""
    run = write_run(root, run_id, epochs=epochs, state=state)
    config = run.config()
    config.update(dataset=dataset, arch=arch)
    for key, value in (settings or {}).items():
        section, _, name = key.rpartition(".")
        (config.setdefault(section, {}) if section else config)[name] = value
    atomic_write_json(run.config_path, config)
    lines = []
    for line in run.events_path.read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "start":
            event.update(config=config, parameters=parameters)
        lines.append(json.dumps(event))
    run.events_path.write_text("\n".join(lines) + "\n")
    status = json.loads(run.status_path.read_text())
    status["updated"] = status["started"] + seconds
    atomic_write_json(run.status_path, status)
    if test is not None:
        atomic_write_json(run.results_path, {"state": state, "metrics": {"loss": 0.5, "accuracy": test},
                                             "valid_metrics": {"loss": 0.6, "accuracy": test - 0.01}})
    return run


# -- rows, orders and filters (no app) ---------------------------------------------------------------
def test_a_row_reads_parameters_time_and_the_test_metric_from_the_run_folder(runs_root):
    tested = real_run(runs_root, "20260101-000000-names-gru", parameters=1_234_567, test=0.8123, seconds=3725)
    untested = real_run(runs_root, "20260101-000100-names-lstm", arch="lstm", state="failed")
    row = read_row(tested)
    assert (row.parameters, row.params, row.duration) == (1_234_567, "1.23M", "1:02:05")
    assert (row.metric, row.value, row.split, row.metric_text()) == ("accuracy", 0.8123, "test", "acc 0.8123 t")
    other = read_row(untested)  # no results.json: the best on validation from status.json
    assert other.split == "valid" and other.metric_text().endswith(" v") and other.state == "failed"
    (untested.path / "events.jsonl").unlink()  # nothing says how big the model is: "-", not a guess
    assert read_row(untested).params == "-"
    assert [format_parameters(n) for n in (None, 999, 12_345, 999_999, 1_500_000, 2_000_000_000)] == \
        ["-", "999", "12.3k", "1M", "1.5M", "2G"]


def test_the_row_cache_reads_a_run_again_only_when_its_files_change(runs_root):
    runs = [real_run(runs_root, f"20260101-00{i}000-names-gru") for i in range(3)]
    cache = RowCache()
    cache.rows(runs)
    assert cache.reads == 3
    cache.rows(runs)
    assert cache.reads == 3  # nothing changed: nothing read
    stamp = runs[1].status_path.stat().st_mtime_ns
    atomic_write_json(runs[1].results_path, {"metrics": {"accuracy": 0.9}})
    os.utime(runs[1].status_path, ns=(stamp + 10**9, stamp + 10**9))
    rows = cache.rows(runs)
    assert cache.reads == 4 and rows[1].value == 0.9 and rows[1].split == "test"


def test_orders_metric_best_first_duration_longest_first_and_ties_oldest_first(runs_root):
    rows = [read_row(real_run(runs_root, "20260101-000000-names-gru", test=0.7, seconds=50)),
            read_row(real_run(runs_root, "20260101-000100-names-lstm", arch="lstm", test=0.9, seconds=10)),
            read_row(real_run(runs_root, "20260101-000200-imdb-gru", dataset="imdb", state="failed", seconds=80))]
    ids = lambda order: [row.id[9:15] for row in sort_rows(rows, order)]  # noqa: E731
    assert ids("oldest") == ["000000", "000100", "000200"] and ids("newest") == ids("oldest")[::-1]
    # by the value shown: the failed run's best on validation (0.703) is above the first run's test 0.7
    assert ids("metric") == ["000100", "000200", "000000"] and rows[2].split == "valid"
    assert ids("duration") == ["000200", "000000", "000100"]
    assert ids("dataset") == ["000200", "000000", "000100"]
    assert ids("state") == ["000200", "000000", "000100"]
    loss = [replace(row, metric="loss", value=v) for row, v in zip(rows, (2.0, 1.0, 3.0), strict=True)]
    assert [row.value for row in sort_rows(loss, "metric")] == [1.0, 2.0, 3.0]  # lower loss is better


def test_filter_terms_match_substrings_and_key_value_pairs(runs_root):
    rows = [read_row(real_run(runs_root, "20260101-000000-names-gru")),
            read_row(real_run(runs_root, "20260101-000100-names-lstm", arch="lstm", state="failed")),
            read_row(real_run(runs_root, "20260101-000200-imdb-lstm", dataset="imdb", arch="lstm"))]
    ids = lambda text: [row.id[9:15] for row in filter_rows(rows, text)]  # noqa: E731
    assert parse_filter("Names state=failed x=y") == [(None, "names"), ("state", "failed"), (None, "x=y")]
    assert ids("lstm") == ["000100", "000200"]
    assert ids("names state=failed") == ["000100"]
    assert ids("dataset=imdb") == ["000200"] and ids("arch=gru") == ["000000"]
    assert ids("FAIL") == ["000100"] and ids("000200") == ["000200"] and ids("nothing") == []


def test_columns_are_dropped_by_importance_and_the_id_loses_only_what_its_columns_show(runs_root):
    from workbench.tui.runs_screen import COLUMNS, fit_columns, short_id

    widths = {name: 10 for name in COLUMNS}
    assert fit_columns(widths, 90) == list(COLUMNS)
    assert fit_columns(widths, 70) == ["mark", "run", "state", "epochs", "dataset", "arch", "metric"]
    assert fit_columns(widths, 40) == ["run", "state", "epochs", "metric"]
    assert fit_columns(widths, 5) == ["run"]  # the id always shows
    assert short_id(read_row(real_run(runs_root, "20260101-000000-names-gru"))) == "20260101-000000"
    assert short_id(read_row(real_run(runs_root, "20260101-000000-names-gru-2"))) == "20260101-000000-2"
    other = read_row(real_run(runs_root, "20260101-000100-names-gru", arch="lstm"))  # id and config disagree
    assert short_id(other) == "20260101-000100-names-gru"
    assert short_id(read_row(real_run(runs_root, "my-experiment"))) == "my-experiment"


# -- `workbench runs` and `workbench runs diff` ----------------------------------------------------
def test_cli_lists_oldest_first_with_the_screens_columns(runs_root, capsys):
    real_run(runs_root, "20260101-000100-names-lstm", arch="lstm", parameters=2_000_000, test=0.75)
    real_run(runs_root, "20260101-000000-names-gru", state="failed")
    assert cli.main(["runs", "--runs-dir", str(runs_root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:7] == ["run", "state", "epochs", "dataset", "arch", "time", "params"]
    assert lines[1].startswith("20260101-000000-names-gru") and lines[2].startswith("20260101-000100-names-lstm")
    assert lines[2].split()[1:] == ["finished", "3/3", "names", "lstm", "1:40", "2M", "acc", "0.7500", "t"]
    assert cli.main(["runs", "--runs-dir", str(runs_root), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["runs"]
    assert listed[1]["parameters"] == 2_000_000 and listed[1]["metric"] == {
        "name": "accuracy", "value": 0.75, "split": "test"}


def test_diff_puts_differing_settings_first_marked_and_cut_to_the_width(runs_root, capsys):
    a = real_run(runs_root, "20260101-000000-names-gru", test=0.8)
    b = real_run(runs_root, "20260101-000100-names-lstm", arch="lstm", test=0.7,
                 settings={"train.lr": 0.01, "model.hidden": 256, "model.note": "long " * 40})
    comparison = compare_runs(a, b)
    differing = [line.key for line in comparison.settings if line.differs]
    assert differing == ["arch", "model.hidden", "model.note", "train.lr"]
    assert [line.key for line in comparison.settings[:4]] == differing  # first
    assert {"dataset", "train.batch_size"} <= {line.key for line in comparison.settings[4:]}
    assert ("test accuracy", "0.8000", "0.7000") in [(r.key, r.a, r.b) for r in comparison.results]
    shown = render_text(comparison, 80)
    assert all(len(line) <= 80 for line in shown)
    note = next(line for line in shown if "model.note" in line)
    assert note.startswith(DIFFERS) and note.endswith("…")
    assert next(line for line in shown if "dataset" in line).startswith(" ")
    assert cli.main(["runs", "diff", "000000", "000100", "--runs-dir", str(runs_root)]) == 0
    out = capsys.readouterr().out
    assert f"{DIFFERS} train.lr" in out and "4 of 10 settings differ" in out
    assert cli.main(["runs", "diff", "000000", "000100", "--json", "--runs-dir", str(runs_root)]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["b"] == b.id and as_json["settings"][0] == {"key": "arch", "a": "gru", "b": "lstm", "differs": True}
    assert cli.main(["runs", "diff", "000000", "--runs-dir", str(runs_root)]) == 2
    assert "needs two run ids" in capsys.readouterr().err
    assert cli.main(["runs", "diff", "000000", "000000", "--runs-dir", str(runs_root)]) == 2
    assert "two different runs" in capsys.readouterr().err


# -- the Runs screen ---------------------------------------------------------------------------------
def _ids(app) -> list[str]:
    return [row.id for row in app.screen._rows]


async def _open_runs(pilot, count: int) -> Any:
    await pilot.press("f4")
    await wait_for(pilot, lambda: pilot.app.screen.query_one("#runs").row_count == count, timeout=10)
    return pilot.app.screen


@pytest.mark.slow
async def test_runs_screen_columns_default_order_sort_and_the_cursor(runs_root):
    real_run(runs_root, "20260101-000000-names-gru", test=0.7, seconds=50)
    real_run(runs_root, "20260101-000100-names-lstm", arch="lstm", test=0.9, seconds=10)
    real_run(runs_root, "20260101-000200-names-rnn", arch="rnn", state="failed", seconds=80)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_runs(pilot, 3)
        table = screen.query_one("#runs")
        # oldest first, as `workbench runs`; the cursor starts on the newest
        assert [row["run"] for row in screen.shown()] == ["20260101-000000", "20260101-000100", "20260101-000200"]
        assert screen.selected_id() == "20260101-000200-names-rnn"
        first = screen.shown()[0]
        assert list(first) == ["run", "state", "epochs", "dataset", "arch", "time", "params", "metric"]
        assert (first["params"], first["time"], first["metric"]) == ("12.3k", "0:50", "acc 0.7000 t")
        assert "3 runs · oldest first" in str(table.border_title)
        table.move_cursor(row=0)
        await pilot.press("ctrl+s")  # newest first: the cursor stays on its run
        await wait_for(pilot, lambda: _ids(app)[0] == "20260101-000200-names-rnn", timeout=5)
        assert screen.selected_id() == "20260101-000000-names-gru" and table.cursor_row == 2
        await pilot.press("ctrl+s")  # metric, best first
        await wait_for(pilot, lambda: "by metric" in str(table.border_title), timeout=5)
        # test 0.9, the failed run's best on validation 0.703, test 0.7
        assert _ids(app) == ["20260101-000100-names-lstm", "20260101-000200-names-rnn", "20260101-000000-names-gru"]
        assert screen.selected_id() == "20260101-000000-names-gru"
        screen.refresh_runs()  # the 2 s refresh keeps it too
        assert screen.selected_id() == "20260101-000000-names-gru"
        await pilot.press("up", "d", "y")  # delete the middle row: the cursor goes to the next, not the top
        await wait_for(pilot, lambda: table.row_count == 2, timeout=10)
        assert screen.selected_id() == "20260101-000000-names-gru" and table.cursor_row == 1


@pytest.mark.slow
async def test_runs_screen_filter_survives_refresh_and_escape_clears_it(runs_root):
    real_run(runs_root, "20260101-000000-names-gru")
    real_run(runs_root, "20260101-000100-names-lstm", arch="lstm", state="failed")
    real_run(runs_root, "20260101-000200-imdb-lstm", dataset="imdb", arch="lstm")
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_runs(pilot, 3)
        table = screen.query_one("#runs")
        await pilot.press("slash", *"lstm")
        await wait_for(pilot, lambda: table.row_count == 2, timeout=5)
        assert "2 of 3 runs" in str(table.border_title) and "/lstm" in str(table.border_title)
        await pilot.press("enter")  # keeps the filter, back to the table
        assert app.focused is table
        real_run(runs_root, "20260101-000300-names-rnn", arch="rnn")  # appears on disk...
        screen.refresh_runs()  # ...and the filter still holds after the refresh
        assert table.row_count == 2 and "2 of 4 runs" in str(table.border_title)
        await pilot.press("slash", "end", *" state=failed")  # lstm state=failed
        await wait_for(pilot, lambda: _ids(app) == ["20260101-000100-names-lstm"], timeout=5)
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 4, timeout=5)
        assert screen.filter_text == "" and app.focused is table and "4 runs" in str(table.border_title)
        await pilot.press("slash", *"zzz")
        await wait_for(pilot, lambda: table.row_count == 0, timeout=5)
        assert "No run matches" in str(screen.query_one("#detail").render())


@pytest.mark.slow
async def test_mark_a_run_then_diff_another_side_by_side(runs_root):
    real_run(runs_root, "20260101-000000-names-gru", test=0.8)
    real_run(runs_root, "20260101-000100-names-lstm", arch="lstm", test=0.7, settings={"train.lr": 0.01})
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_runs(pilot, 2)
        await pilot.press("equals_sign")  # nothing marked yet: says what to do
        await test_tui.notified(pilot, "mark a run with m")
        await pilot.press("up", "m")
        await wait_for(pilot, lambda: screen.shown()[0].get("mark") == "◆", timeout=5)
        await pilot.press("down", "equals_sign")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "RunDiffScreen", timeout=5)
        diff = app.screen.query_one("#diff")
        rows = [[str(cell).strip() for cell in diff.get_row_at(i)] for i in range(diff.row_count)]
        assert rows[0] == [DIFFERS, "arch", "gru", "lstm"] and rows[1] == [DIFFERS, "train.lr", "0.003", "0.01"]
        assert rows[2][0] == "" and ["", "dataset", "names", "names"] in rows
        assert [DIFFERS, "test accuracy", "0.8000", "0.7000"] in rows
        assert "2 of" in str(app.screen.query_one("Vertical").border_title)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, timeout=5)


# -- snapshots at 80x24 --------------------------------------------------------------------------------
@pytest.fixture()
def snap_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runs folder at a fixed path, in UTC: the Runs screen shows the folder and start times."""
    yield from fixed_runs_root(monkeypatch, "workbench-snapshots-runs")


def _snapshot_runs(root: Path) -> None:
    real_run(root, "20260101-000000-names-gru", test=0.8123, seconds=100)
    real_run(root, "20260101-000100-names-lstm", arch="lstm", state="failed", seconds=4000, parameters=204_818)
    real_run(root, "20260101-000200-imdb-lstm", dataset="imdb", arch="lstm", test=0.8712, seconds=700,
             parameters=2_345_678, settings={"train.lr": 0.001, "model.hidden": 256, "data.max_len": 400})


@pytest.mark.slow
def test_snapshot_runs_columns_80x24(snap_compare, snap_root):
    _snapshot_runs(snap_root)

    async def runs(pilot):
        screen = await _open_runs(pilot, 3)
        screen.marked = "20260101-000100-names-lstm"  # as `m` marks it, without the notification
        screen.action_refresh()
        await pilot.press("up")
        await pilot.pause(0.3)

    assert snap_compare(make_app(snap_root), terminal_size=(80, 24), run_before=runs)


@pytest.mark.slow
def test_snapshot_runs_diff_80x24(snap_compare, snap_root):
    _snapshot_runs(snap_root)

    async def diff(pilot):
        screen = await _open_runs(pilot, 3)
        screen.marked = "20260101-000000-names-gru"  # as `m` marks it, without the notification
        await pilot.press("equals_sign")
        await wait_for(pilot, lambda: pilot.app.screen.__class__.__name__ == "RunDiffScreen", timeout=5)
        await pilot.pause(0.3)

    assert snap_compare(make_app(snap_root), terminal_size=(80, 24), run_before=diff)


@pytest.mark.slow
async def test_e_puts_a_runs_settings_into_the_setup_form_to_train_again(runs_root):
    real_run(runs_root, "20260101-000000-names-lstm", arch="lstm", test=0.8,
             settings={"train.lr": 0.01, "train.epochs": 2, "model.hidden_size": 32})
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_runs(pilot, 1)
        await pilot.press("e")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "SetupScreen"
                       and bool(app.screen.query("#p-model-hidden_size")), timeout=10)
        setup = app.screen
        await wait_for(pilot, lambda: setup.query_one("#p-train-lr").value == "0.01", timeout=10)
        assert (setup.dataset, setup.arch) == ("names", "lstm")
        assert setup.query_one("#p-train-epochs").value == "2"
        assert setup.query_one("#p-model-hidden_size").value == "32"
        assert {"train.lr", "train.epochs", "model.hidden_size"} <= set(setup.edited)  # marked as edits
        config = setup.build_config()
        assert (config.train["lr"], config.train["epochs"], config.model["hidden_size"]) == (0.01, 2, 32)


@pytest.mark.slow
async def test_e_on_a_run_whose_settings_are_unreadable_says_so_and_stays(runs_root):
    run = real_run(runs_root, "20260101-000000-names-gru", test=0.8)
    run.config_path.write_text("{not json", encoding="utf-8")
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_runs(pilot, 1)
        await pilot.press("e")
        await test_tui.notified(pilot, "no readable config.json")
        assert app.screen is screen
