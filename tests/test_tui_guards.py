"""A worker's result that arrives after its screen or the app began to close is dropped, not raised."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.css.query import NoMatches
from textual.widgets import Static

from workbench.tui.guards import from_worker


class Shows(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("", id="out")

    @from_worker
    def show(self, text: str) -> str:
        self.query_one("#out", Static).update(text)
        return text


async def test_a_result_for_an_open_screen_is_shown() -> None:
    app = Shows()
    async with app.run_test():
        assert app.show("hello") == "hello"


async def test_a_missing_widget_on_an_open_screen_is_still_a_bug() -> None:
    app = Shows()
    async with app.run_test() as pilot:
        await app.query_one("#out").remove()
        await pilot.pause()
        with pytest.raises(NoMatches):
            app.show("hello")


async def test_a_result_that_arrives_after_the_app_closed_is_dropped() -> None:
    app = Shows()
    async with app.run_test():
        pass
    assert app.show("too late") is None


async def test_a_result_that_arrives_while_the_app_takes_its_widgets_down_is_dropped() -> None:
    app = Shows()
    async with app.run_test() as pilot:
        await app.query_one("#out").remove()
        await pilot.pause()
        app._running = False  # what App._shutdown sets before it prunes the screens
        try:
            assert app.show("while closing") is None
        finally:
            app._running = True
