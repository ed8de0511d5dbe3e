"""Dynamic micro-batching: texts of concurrent requests are gathered for at most `max_wait_ms`
after the first one arrives (or until `max_batch` texts / `max_batch_tokens` sub-tokens) and
run together on one inference thread; each request gets its own results, in order, even when
its texts span several batches. A full queue refuses new work at once (QueueFull) instead of
letting latency pile up."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


class QueueFull(Exception):
    """More texts are waiting than the server accepts; the caller should retry later."""


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    results: list[Any]
    remaining: int
    failed: bool = False


@dataclass
class _Item:
    job: _Job
    index: int
    text: str
    tokens: int


@dataclass
class BatcherStats:
    batches: int = 0
    items: int = 0
    last_sizes: list[int] = field(default_factory=list)


class MicroBatcher:
    def __init__(self, run_batch: Callable[[list[str]], list[Any]], count_tokens: Callable[[str], int],
                 max_wait_ms: float = 5.0, max_batch: int = 64, max_batch_tokens: int = 8192, max_queue: int = 512,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self.run_batch, self.count_tokens = run_batch, count_tokens
        self.max_wait = max_wait_ms / 1000
        self.max_batch, self.max_batch_tokens, self.max_queue = max_batch, max_batch_tokens, max_queue
        self.on_batch = on_batch
        self._q: queue.Queue[_Item | None] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stats = BatcherStats()

    @property
    def depth(self) -> int:
        """Texts accepted and not yet answered."""
        return self._pending

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="trustfit-inference", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish everything already queued, then end the inference thread."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join()
            self._thread = None

    async def submit(self, texts: Sequence[str]) -> list[Any]:
        if not texts:
            return []
        with self._lock:
            if self._pending + len(texts) > self.max_queue:
                raise QueueFull(f"{self._pending} texts are waiting (limit {self.max_queue})")
            self._pending += len(texts)
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), [None] * len(texts), len(texts))
        for i, t in enumerate(texts):
            self._q.put(_Item(job, i, t, self.count_tokens(t)))
        return await job.future

    def _gather(self, first: _Item) -> tuple[list[_Item], bool]:
        batch, tokens, stop = [first], first.tokens, False
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch and tokens < self.max_batch_tokens:
            left = deadline - time.perf_counter()
            try:
                item = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
            tokens += item.tokens
        return batch, stop

    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._q.get()
            if first is None:
                # drain what is still queued (graceful shutdown), then stop
                rest = []
                while not self._q.empty():
                    it = self._q.get_nowait()
                    if it is not None:
                        rest.append(it)
                if rest:
                    self._run(rest)
                break
            batch, stop = self._gather(first)
            self._run(batch)

    def _run(self, batch: list[_Item]) -> None:
        t0 = time.perf_counter()
        try:
            results = self.run_batch([it.text for it in batch])
            error = None
        except Exception as e:  # noqa: BLE001 - delivered to every waiting request
            results, error = [None] * len(batch), e
        self.stats.batches += 1
        self.stats.items += len(batch)
        if self.on_batch:
            self.on_batch(len(batch), time.perf_counter() - t0)
        for it, r in zip(batch, results):
            job = it.job
            with self._lock:
                self._pending -= 1
            if job.failed:
                continue
            if error is not None:
                job.failed = True
                job.loop.call_soon_threadsafe(_set_exception, job.future, error)
                continue
            job.results[it.index] = r
            job.remaining -= 1
            if job.remaining == 0:
                job.loop.call_soon_threadsafe(_set_result, job.future, job.results)


def _set_result(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
