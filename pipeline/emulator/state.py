"""The emulator's memory: stats, quota windows, fault counters, generated images, cached prompt prefixes."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pipeline.emulator.caching import PromptCache
from pipeline.emulator.compute import ComputeQueue
from pipeline.emulator.faults import FaultInjector
from pipeline.emulator.quotas import QuotaBook
from pipeline.emulator.stats import Stats

IMAGES_KEPT = 512


class ImageStore:
    """Generated images served back for response_format=url, oldest evicted first."""

    def __init__(self, capacity: int = IMAGES_KEPT) -> None:
        self._images: OrderedDict[str, bytes] = OrderedDict()
        self._capacity = capacity

    def put(self, name: str, data: bytes) -> None:
        self._images[name] = data
        self._images.move_to_end(name)
        while len(self._images) > self._capacity:
            self._images.popitem(last=False)

    def get(self, name: str) -> bytes | None:
        return self._images.get(name)

    def clear(self) -> None:
        self._images.clear()


class EmulatorState:
    """Everything `POST /_emulator/reset` forgets. `clock` is injectable for tests."""

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stats = Stats()
        self.quotas = QuotaBook()
        self.faults = FaultInjector(seed)
        self.images = ImageStore()
        self.compute = ComputeQueue()
        self.prompt_cache = PromptCache()

    def reset(self, seed: int) -> None:
        self.stats = Stats()
        self.quotas.clear()
        self.faults.reset(seed)
        self.images.clear()
        self.compute = ComputeQueue()
        self.prompt_cache.clear()

    def snapshot(self) -> dict[str, Any]:
        snapshot = self.stats.snapshot(dict(self.faults.seen))
        if self.compute.computed:  # only once the compute-bound mode ran: other stats keep their shape
            snapshot["compute"] = self.compute.snapshot()
        return snapshot
