"""Key remapping from a TOML file.

Every binding in the app has an id (``setup.train``, ``monitor.pause``, ...). A user file maps ids
to keys::

    # ~/.config/workbench/keys.toml  (or the file named by WORKBENCH_KEYS)
    [keys]
    "monitor.pause" = "ctrl+p"
    "app.runs" = "f4,r"

``workbench`` validates the file when the app starts and shows what it could not use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from workbench import settings

#: Keys many terminals never send, or send as something else.
UNDELIVERABLE = {"ctrl+enter", "ctrl+return", "shift+enter", "ctrl+shift+enter", "ctrl+i", "ctrl+m", "ctrl+["}
_KEY_RE = re.compile(r"^[a-z0-9_+\-]+$|^.$")


def keymap_path() -> Path:
    """``WORKBENCH_KEYS``, else ``$XDG_CONFIG_HOME/workbench/keys.toml``."""
    return settings.current().keys_file


def load_keymap(known_ids: set[str] | None, path: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """(keymap, problems): the usable entries of the keys file, and one line per entry it skipped.
    With ``known_ids`` None, action ids are not checked here."""
    file = path or keymap_path()
    if not file.is_file():
        return {}, []
    import tomllib  # only with a keys file: not on the way to the first frame otherwise

    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        return {}, [f"{file}: not valid TOML ({exc}); default keys are used"]
    table = raw.get("keys", raw)
    keymap: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, value in table.items():
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{file}: {binding_id} must be a key name such as \"ctrl+r\"")
            continue
        if known_ids is not None and binding_id not in known_ids:
            problems.append(f"{file}: unknown action {binding_id!r}")
            continue
        keys = [k.strip().lower() for k in value.split(",") if k.strip()]
        bad = [k for k in keys if k in UNDELIVERABLE or not _KEY_RE.match(k)]
        if bad:
            problems.append(f"{file}: {binding_id}: {', '.join(bad)} cannot be used (terminals do not send it)")
            keys = [k for k in keys if k not in bad]
        if keys:
            keymap[binding_id] = ",".join(keys)
    return keymap, problems


def key_conflicts(scopes: Mapping[str, Sequence[tuple[str, str]]], keymap: Mapping[str, str],
                  app_scope: str = "Everywhere") -> list[tuple[str, str]]:
    """(remapped id, problem) for each remapped binding whose key another binding already uses on
    the same screen or everywhere (``app_scope``): one of the two would never run (``"monitor.pause"
    = "p"`` would hide Predict). ``scopes`` maps a screen's title to its (binding id, default keys)."""
    found: dict[tuple[str, str], str] = {}
    app_bindings = list(scopes.get(app_scope, ()))
    for scope, bindings in scopes.items():
        pool = list(bindings) + ([] if scope == app_scope else app_bindings)
        owners: dict[str, list[str]] = {}
        for binding_id, default in pool:
            for key in keymap.get(binding_id, default).split(","):
                if binding_id not in owners.setdefault(key.strip(), []):
                    owners[key.strip()].append(binding_id)
        for key, ids in owners.items():
            for binding_id in ids:
                if len(ids) > 1 and binding_id in keymap and (binding_id, key) not in found:
                    others = ", ".join(other for other in ids if other != binding_id)
                    where = "" if scope == app_scope else f" on the {scope} screen"
                    found[(binding_id, key)] = (f"{binding_id} = \"{key}\": {key} is already the key of {others}"
                                                f"{where}; the default key is kept")
    return [(binding_id, problem) for (binding_id, _), problem in found.items()]
