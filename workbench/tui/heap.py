"""Keep the garbage collector's full passes from stopping the app's event loop (issue 12).

Once the plugins are loaded (and torch with them), the app's process holds about 330,000 objects that
the cyclic garbage collector tracks. Every full collection walked all of them with the event loop
stopped: 170 to 250 ms, measured as the slowest presses in the dataset list. Most of those objects
(modules, classes, the registry, the screens) live as long as the app, so they are moved out of the
collector's sight (``gc.freeze``); full collections then walk only what was made since. Modules keep
arriving after start-up (the first model-size estimate, the first checkpoint loaded), so the app
freezes again whenever modules were imported since the last time.
"""

from __future__ import annotations

import gc
import sys
import threading


def freeze_long_lived() -> int:
    """Freeze every object alive now; returns how many objects are frozen in all.

    A young collection first keeps the fresh garbage out of the frozen set. Safe from any thread."""
    gc.collect(1)
    gc.freeze()
    return gc.get_freeze_count()


def thaw() -> None:
    """Give the frozen objects back to the collector: the app is closing (in tests, another follows)."""
    gc.unfreeze()


class HeapKeeper:
    """Freezes again when modules were imported since the last freeze (each brings long-lived objects).

    Only then: frozen garbage is never freed, and with no new module the objects made since are mostly
    the app's own short-lived widgets and events."""

    def __init__(self) -> None:
        self._modules_seen = 0
        self._lock = threading.Lock()

    def settle(self) -> bool:
        """Freeze if modules were imported since the last call; True when it froze."""
        with self._lock:
            modules = len(sys.modules)
            if modules == self._modules_seen:
                return False
            self._modules_seen = modules
            freeze_long_lived()
            return True
