"""Small dialogs: help, yes/no, a file path, and picking a run's checkpoint."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from workbench.terminal import printable

_DIALOG_CSS = """
    align: center middle;
    & > Vertical {
        width: 90%;
        max-width: 100;
        height: auto;
        max-height: 90%;
        border: round $accent;
        padding: 0 1;
        background: $surface;
    }
    & Label { width: 100%; }
"""


class ConfirmScreen(ModalScreen[bool]):
    """y / n question."""

    DEFAULT_CSS = f"ConfirmScreen {{ {_DIALOG_CSS} }}"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Label("[b]y[/b] yes   [b]n[/b] / [b]escape[/b] no")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class PathScreen(ModalScreen[str | None]):
    """Ask for a file name (save / load the setup)."""

    DEFAULT_CSS = f"PathScreen {{ {_DIALOG_CSS} }}"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="path.cancel")]

    def __init__(self, title: str, default: str) -> None:
        super().__init__()
        self.title_text = title
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Input(self.default, id="path")
            yield Label("[b]enter[/b] ok   [b]escape[/b] cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChooseScreen(ModalScreen[str | None]):
    """Pick one of several items (runs with a checkpoint)."""

    DEFAULT_CSS = f"ChooseScreen {{ {_DIALOG_CSS} }} ChooseScreen OptionList {{ max-height: 16; }}"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="choose.cancel")]

    def __init__(self, title: str, items: list[tuple[str, str]], empty: str = "nothing to choose") -> None:
        super().__init__()
        self.title_text = title
        self.items = items
        self.empty = empty

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            if self.items:
                yield OptionList(*[Option(text, id=key) for key, text in self.items], id="choices")
            else:
                yield Label(self.empty)
            yield Label("[b]enter[/b] choose   [b]escape[/b] cancel")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every action of every screen with its current key (after remapping) and its id for keys.toml."""

    DEFAULT_CSS = f"""HelpScreen {{ {_DIALOG_CSS} }}
    HelpScreen VerticalScroll {{ height: auto; max-height: 20; }}"""
    BINDINGS = [Binding("escape,q,f1", "close", "Close", id="help.close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str, str]]]], keys_file: str,
                 notes: list[str] | None = None) -> None:
        super().__init__()
        self.sections = sections
        self.keys_file = keys_file
        self.notes = notes or []

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("workbench: train and explore sequence models with the keyboard\n\n", style="bold")
        for title, rows in self.sections:
            text.append(f"{title}\n", style="bold underline")
            for keys, description, binding_id in rows:
                # narrow enough for 80 columns: key, action and its id on one line
                text.append(f"  {keys:<13}", style="bold")
                text.append(f"{description:<18}")
                text.append(f"{binding_id}\n", style="dim")
            text.append("\n")
        text.append("ctrl+p opens the command palette: every action above can be searched and run there.\n")
        text.append(f"Remap keys in {self.keys_file} (or the file named by $WORKBENCH_KEYS), e.g.\n")
        text.append('  [keys]\n  "monitor.pause" = "ctrl+p"\n', style="bold")
        for note in self.notes:
            text.append(f"{note}\n", style="italic")
        with Vertical():
            with VerticalScroll(id="help-body"):
                yield Static(text)
            yield Label("[b]escape[/b] close")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)


def choose_items(runs: list[Any]) -> list[tuple[str, str]]:
    """(path of best or last checkpoint, shown text) for runs that have one, newest first."""
    items = []
    for run in sorted(runs, key=lambda r: r.id, reverse=True):
        for which in ("best", "last"):
            path = run.checkpoint_path(which)
            if path.exists():
                summary = run.summary()
                items.append((str(path), f"{run.id}  {summary.get('state')}  ({which}.pt)"))
                break
    return items


class ProblemsScreen(ModalScreen[None]):
    """Every problem reported since the app started (plugins that failed to load, key bindings that
    were refused), to read at leisure instead of in a notification that goes away."""

    DEFAULT_CSS = f"""ProblemsScreen {{ {_DIALOG_CSS} }}
    ProblemsScreen VerticalScroll {{ height: auto; max-height: 18; }}"""
    BINDINGS = [Binding("escape,f9", "dismiss", "Close", id="problems.close")]

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__()
        self.problems = list(problems)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]Problems[/b] ({len(self.problems)} since the app started)")
            with VerticalScroll():
                if not self.problems:
                    yield Static("none: every plugin loaded and every key binding was accepted")
                for title, message in self.problems:
                    text = Text()
                    text.append(f"{title}: ", style="bold")
                    text.append(printable(message))
                    yield Static(text)
            yield Label("[b]escape[/b] close   `workbench plugins` lists plugin errors too")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
