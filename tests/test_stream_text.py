"""The Generate pane: appending costs the same however long the text is, and shows what wrapping the
whole text at once would show."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult

from workbench.tui.stream_text import StreamText, WrappedText, _row, wrap_starts


def whole_rows(text: str, width: int) -> list[str]:
    """The rows of ``text`` wrapped in one go (the reference the incremental wrapping must match)."""
    rows = []
    for paragraph in text.replace("\t", " " * 8).split("\n"):
        starts = wrap_starts(paragraph, 0, width)
        ends = [*starts[1:], len(paragraph)]
        rows.extend(_row(paragraph[a:b], width) for a, b in zip(starts, ends, strict=True))
    return rows


class Pane(App[None]):
    def compose(self) -> ComposeResult:
        yield StreamText(id="out")


def test_wrapping_is_greedy_folds_long_words_and_keeps_every_character():
    text = "the quick brown fox jumps over a lazy dog " + "x" * 25
    starts = wrap_starts(text, 0, 10)
    rows = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    assert "".join(rows) == text
    assert [r.rstrip() for r in rows] == ["the quick", "brown fox", "jumps over", "a lazy dog", "xxxxxxxxxx",
                                          "xxxxxxxxxx", "xxxxx"]


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.text(alphabet="ab cdé\n世界\t", max_size=30), max_size=25),
       width=st.integers(min_value=1, max_value=30))
def test_appending_piece_by_piece_shows_what_wrapping_it_all_at_once_shows(pieces, width):
    wrapped = WrappedText(width)
    for piece in pieces:
        wrapped.append(piece)
    assert wrapped.text == "".join(pieces).replace("\t", " " * 8)
    expected = whole_rows("".join(pieces), width)
    assert [wrapped.row(i) for i in range(len(wrapped))] == expected
    wrapped.rewrap(width)  # as after a resize
    assert [wrapped.row(i) for i in range(len(wrapped))] == expected


async def test_a_long_text_is_appended_at_a_cost_independent_of_its_length():
    """Append ~100 k characters in chunks of 40 (a long generation at 20 flushes a second): the last
    chunks cost about what the first ones did (the old pane re-rendered everything each time)."""
    async with Pane().run_test(size=(80, 24)) as pilot:
        pane = pilot.app.query_one(StreamText)
        await pilot.pause()
        chunk = "To be, or not to be, that is the question:\n"[:40]

        def cost(chunks: int) -> float:
            start = time.process_time()
            for _ in range(chunks):
                pane.append(chunk)
                pane.render_line(0), pane.render_line(23)  # what a repaint of the pane in view asks
            return time.process_time() - start

        first = min(cost(200) for _ in range(3))
        for _ in range(10):
            cost(250)  # 2,500 more chunks: 100,000 characters
        last = min(cost(200) for _ in range(3))
        assert len(pane.text) > 100_000
        assert last < 3 * first + 0.05, (first, last)
        await pilot.pause()
        assert pane.scroll_y == pane.max_scroll_y  # followed the end
