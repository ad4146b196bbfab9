"""Widgets the screens share: the navigation bar (screen keys), the footer, fields with fixed values."""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.color import Color
from textual.filter import LineFilter
from textual.suggester import SuggestFromList
from textual.widgets import Footer, Input, Static

from workbench.terminal import is_printable, without_controls

#: (mode, binding id, label) in the order shown.
NAV = (("setup", "app.setup", "Setup"), ("monitor", "app.monitor", "Train"), ("runs", "app.runs", "Runs"),
       ("predict", "app.predict", "Predict"), ("generate", "app.generate", "Generate"), (None, "app.help", "Help"))


class NoControlCharacters(LineFilter):
    """The app's last line of defence: no control character in any widget's text reaches the
    terminal (an ESC from a class name, a run id or a log line would be obeyed by it). Screens show
    data through :func:`workbench.terminal.printable`, which makes them visible; this removes any
    that got past it, after layout (they take no cell, so nothing moves)."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if all(segment.control or is_printable(segment.text, layout=False) for segment in segments):
            return segments
        return [segment if segment.control else Segment(without_controls(segment.text), segment.style)
                for segment in segments]


class NavBar(Static):
    """One line: the app's name, and the key for each screen with the current one marked."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; }
    """

    def __init__(self, mode: str) -> None:
        super().__init__(id="nav")
        self.mode = mode

    def on_mount(self) -> None:
        self.update(self.line())

    def key_for(self, binding_id: str) -> str:
        app = self.app
        keys = getattr(app, "_keymap", {}).get(binding_id)
        if keys is None:
            for binding in getattr(app, "BINDINGS", []):
                if getattr(binding, "id", None) == binding_id:
                    keys = binding.key
        return (keys or "?").split(",")[0].replace("question_mark", "?")

    def line(self) -> Text:
        text = Text()
        text.append(" workbench ", style="bold reverse")
        for mode, binding_id, label in NAV:
            text.append(" ")
            style = "bold reverse" if mode == self.mode else ""
            text.append(f" {self.key_for(binding_id)} ", style="bold")
            text.append(f"{label} ", style=style)
        return text


def footer() -> Footer:
    return Footer(compact=True)


class ChoiceInput(Input):
    """A field with a fixed set of values (choices, true/false): type with completion, or step
    through the values with up and down, so no value has to be remembered or spelled."""

    BINDINGS = [
        Binding("down", "step(1)", "Next value", show=False),
        Binding("up", "step(-1)", "Previous value", show=False),
    ]

    def __init__(self, value: str, choices: list[str], **kwargs: Any) -> None:
        super().__init__(value, suggester=SuggestFromList(choices, case_sensitive=False), **kwargs)
        self.choices = choices

    def action_step(self, offset: int) -> None:
        current = self.value.strip().lower()
        lowered = [choice.lower() for choice in self.choices]
        index = lowered.index(current) + offset if current in lowered else (0 if offset > 0 else -1)
        self.value = self.choices[index % len(self.choices)]
        self.cursor_position = len(self.value)


#: How focus shows without colour (NO_COLOR, a monochrome terminal): the focused box's border turns
#: heavy (other characters, not only another colour), and the highlighted row of a list or table is
#: bold and reversed while the list has focus (bold only when it has not).
FOCUS_CSS = """
Input:focus, OptionList:focus, DataTable:focus, TextArea:focus { border: heavy $accent; }
Input.-textual-compact:focus { border: none; text-style: bold; }
VerticalScroll:focus, HorizontalScroll:focus, LogView:focus, Chart:focus, StreamText:focus { border: heavy $accent; }
OptionList > .option-list--option-highlighted { text-style: bold; }
OptionList:focus > .option-list--option-highlighted { text-style: bold reverse; }
DataTable > .datatable--cursor { text-style: bold; }
DataTable:focus > .datatable--cursor { text-style: bold reverse; }
"""
