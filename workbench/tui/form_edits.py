"""What the user changed in the setup form, kept per dataset (issue 12).

Values typed for one dataset must not follow silently to the next: each dataset starts from its own
recommended defaults, and coming back to a dataset shows what was typed there before. ``train.*`` and
``data.*`` values belong to a dataset; ``model.*`` values to a dataset and an architecture (a dataset
may recommend another hidden size for each). The architecture picked for a dataset is remembered too.
``run.data_dir`` says where the data is, for every dataset: it is kept apart from the edits.

No Textual here: the screen asks, this remembers.
"""

from __future__ import annotations

from collections.abc import Mapping


def scope_of(dataset: str, arch: str | None, key: str) -> str:
    """Where an edit of ``key`` ("train.lr", "model.hidden_size") is kept."""
    return f"{dataset}/{arch}" if key.startswith("model.") else dataset


class FormEdits:
    """The values that differ from the defaults, by dataset (and architecture for ``model.*``)."""

    def __init__(self) -> None:
        #: scope (see :func:`scope_of`) -> key -> the text typed
        self._typed: dict[str, dict[str, str]] = {}
        self._archs: dict[str, str] = {}
        #: The data folder typed (for every dataset); None: the settings' default.
        self.data_dir: str | None = None

    def get(self, dataset: str, arch: str | None, key: str) -> str | None:
        return self._typed.get(scope_of(dataset, arch, key), {}).get(key)

    def put(self, dataset: str, arch: str | None, key: str, value: str | None) -> None:
        """Remember ``value`` typed into ``key``; None when the field shows its default again."""
        scope = scope_of(dataset, arch, key)
        if value is None:
            typed = self._typed.get(scope)
            if typed is not None:
                typed.pop(key, None)
                if not typed:
                    del self._typed[scope]
        else:
            self._typed.setdefault(scope, {})[key] = value

    def of(self, dataset: str | None, arch: str | None) -> dict[str, str]:
        """The edits the form of ``dataset`` with ``arch`` shows, by key."""
        if dataset is None:
            return {}
        shown = dict(self._typed.get(dataset, {}))
        if arch is not None:
            shown.update(self._typed.get(f"{dataset}/{arch}", {}))
        return shown

    def clear(self, dataset: str) -> None:
        """Forget every edit made for ``dataset``, with any architecture (ctrl+r)."""
        for scope in [s for s in self._typed if s == dataset or s.startswith(f"{dataset}/")]:
            del self._typed[scope]

    def replace(self, dataset: str, arch: str, values: Mapping[str, str]) -> None:
        """The edits of ``dataset`` become ``values`` (a loaded setup file), with ``arch`` picked."""
        self.clear(dataset)
        for key, value in values.items():
            self.put(dataset, arch, key, value)
        self.pick_arch(dataset, arch)

    def arch_for(self, dataset: str) -> str | None:
        """The architecture picked for ``dataset`` in this session; None: its default."""
        return self._archs.get(dataset)

    def pick_arch(self, dataset: str, arch: str) -> None:
        self._archs[dataset] = arch
