"""Widgets every screen shares: the navigation bar (screen keys) and the footer."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Footer, Static

#: (mode, binding id, label) in the order shown.
NAV = (("setup", "app.setup", "Setup"), ("monitor", "app.monitor", "Train"), ("runs", "app.runs", "Runs"),
       ("predict", "app.predict", "Predict"), ("generate", "app.generate", "Generate"), (None, "app.help", "Help"))


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
