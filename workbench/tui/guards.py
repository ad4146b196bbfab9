"""Results that worker threads hand back to a screen that may be going away.

A worker's result reaches the UI through ``call_from_thread`` some time after the work began. By then
the person may have closed the screen, or quit the app, which takes every widget down before the screen
itself; a ``query_one`` then finds nothing. That is not an error: there is no one left to show it to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from textual.css.query import NoMatches
from textual.dom import DOMNode

Method = TypeVar("Method", bound=Callable[..., Any])


def going_away(node: DOMNode) -> bool:
    """True once the node, its screen or the app has begun to close (its widgets may already be gone)."""
    if not node.is_attached or node._closing or node._closed or node._pruning:
        return True
    app = node.app
    return not app._running or app._closing


def from_worker(method: Method) -> Method:
    """Drop a worker's result quietly if the screen or the app has begun to close; run it otherwise.

    A missing widget on a screen that is still open is a real bug and still raises.
    """

    @functools.wraps(method)
    def deliver(self: DOMNode, *args: Any, **kwargs: Any) -> Any:
        if going_away(self):
            return None
        try:
            return method(self, *args, **kwargs)
        except NoMatches:
            if going_away(self):
                return None
            raise

    return deliver  # type: ignore[return-value]
