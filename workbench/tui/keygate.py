"""Keys typed ahead land where they would have landed at human speed.

Textual hands each key to the widget focused when the app reads it, into that widget's queue. Keys
that arrive in a burst (a slow SSH link delivers several at once) are all queued on the same widget
before the first is handled, so in ``Tab 7`` the 7 went to the field Tab was leaving. The gate hands
keys on one at a time: the next only once the widget that got the previous one, and its ancestors
(where a Submitted or a Changed message moves the focus), have emptied their queues, or after
:data:`SETTLE_SECONDS` at most, so a handler that waits on something else never holds keys for long.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from textual import events
from textual.dom import DOMNode
from textual.screen import Screen

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp

#: The longest a key waits for the previous one to be handled.
SETTLE_SECONDS = 0.5
#: Turns of the event loop with every queue of the chain empty that count as "handled".
QUIET_TURNS = 3


class KeyGate:
    def __init__(self, app: WorkbenchApp) -> None:
        self.app = app
        self._waiting: deque[events.Key] = deque()
        self._task: asyncio.Task[None] | None = None

    def hold(self, event: events.Key) -> None:
        """Queue a key read from the terminal; it is delivered after those before it are handled."""
        self._waiting.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._deliver())

    async def _deliver(self) -> None:
        while self._waiting:
            event = self._waiting.popleft()
            target: DOMNode = self.app.focused or self.app.screen
            await self.app.deliver_key(event)
            try:  # also after the last key: the next may be on its way into the app's queue
                await asyncio.wait_for(self._settle(target), SETTLE_SECONDS)
            except TimeoutError:
                pass

    @staticmethod
    async def _settle(target: DOMNode) -> None:
        """Until ``target`` and its ancestors up to the screen (bubbled messages go up) have had empty
        queues for a few turns of the event loop (a handler in progress has left its queue)."""
        chain: list[DOMNode] = []
        node: DOMNode | None = target
        while node is not None:
            chain.append(node)
            if isinstance(node, Screen):
                break
            node = node._parent if isinstance(node._parent, DOMNode) else None
        quiet_turns = 0
        while quiet_turns < QUIET_TURNS:
            await asyncio.sleep(0)
            busy = any(n.message_queue_size for n in chain if n.is_attached)
            quiet_turns = 0 if busy else quiet_turns + 1
