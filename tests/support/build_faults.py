"""Contexts that misbehave inside a build worker (pickled to it by reference), for tests of
how delivery survives a worker that hangs or dies."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator, KeysView


class HangingContext(dict[str, object]):
    """Building reads the context's keys: this one never finishes (a stuck build)."""

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        time.sleep(3600)
        return super().keys()

    def __iter__(self) -> Iterator[str]:
        time.sleep(3600)
        return super().__iter__()


class DyingContext(dict[str, object]):
    """This one kills the process that reads it (a crashed build)."""

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        os.kill(os.getpid(), signal.SIGKILL)
        return super().keys()

    def __iter__(self) -> Iterator[str]:
        os.kill(os.getpid(), signal.SIGKILL)
        return super().__iter__()


def hold_pool(ready_fd: int) -> None:
    """Start a build pool, write its worker pids to ``ready_fd`` and wait to be killed."""
    import asyncio

    from tasks.mail.build import BuildExecutor
    from tests.support.processes import live_children

    async def main() -> None:
        pool = BuildExecutor(2, company="CRM Flows", default_base_url="https://x.test")
        while not pool.ready:
            await asyncio.sleep(0.01)
        pids = [p for p in live_children(os.getpid()) if p != os.getpid()]
        os.write(ready_fd, (" ".join(map(str, pids)) + "\n").encode())
        await asyncio.sleep(3600)

    asyncio.run(main())


if __name__ == "__main__":
    import sys

    hold_pool(int(sys.argv[1]))
