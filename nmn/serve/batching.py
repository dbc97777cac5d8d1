"""Dynamic batching: merge concurrent requests along the first (batch) dimension.

A :class:`Batcher` owns one worker thread per model. Requests are queued with
:meth:`Batcher.submit`, which returns a :class:`concurrent.futures.Future`
(await it from asyncio with ``asyncio.wrap_future``). The worker takes the
oldest request, waits at most ``timeout_s`` after that request arrived for
more requests with the same per-row shapes and dtypes, concatenates them (up
to ``max_batch`` rows), runs the model once and splits the outputs back by
row. If the merged run fails, or an output does not keep the batch dimension,
the requests are run one by one instead, so each caller gets exactly what an
unbatched call would give.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

Feeds = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]


@dataclass
class _Item:
    feeds: Feeds
    rows: int
    key: tuple
    future: Future
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """Batch calls to ``run(feeds) -> {output name: array}`` from many threads.

    Example::

        >>> import numpy as np
        >>> b = Batcher(lambda f: {"y": f["x"] * 2}, max_batch=8, timeout_s=0.001)
        >>> b.submit({"x": np.ones((2, 3), np.float32)}).result()["y"].shape
        (2, 3)
        >>> b.close()
    """

    def __init__(
        self,
        run: Callable[[Feeds], Outputs],
        *,
        max_batch: int,
        timeout_s: float,
        name: str = "model",
        on_batch: Callable[[int, int], None] | None = None,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run = run
        self.max_batch = int(max_batch)
        self.timeout_s = max(0.0, float(timeout_s))
        self._on_batch = on_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"nmn-batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, feeds: Feeds) -> Future:
        """Queue one request; every array must have the batch dimension first."""
        fut: Future = Future()
        rows = int(next(iter(feeds.values())).shape[0])
        key = tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in feeds.items()))
        with self._lock:
            if self._closed:
                fut.set_exception(RuntimeError("the batcher is closed"))
                return fut
            self._queue.put(_Item(feeds, rows, key, fut))
        return fut

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker after the queued requests are answered."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ worker

    def _loop(self) -> None:
        waiting: deque[_Item] = deque()  # taken from the queue, not yet fitting a batch
        stopping = False
        while True:
            if waiting:
                first = waiting.popleft()
            elif stopping:
                return
            else:
                first = self._queue.get()
                if first is None:
                    return
            batch = [first]
            rows = first.rows
            # Same-shaped requests that were set aside earlier join first.
            for item in list(waiting):
                if rows >= self.max_batch:
                    break
                if item.key == first.key and rows + item.rows <= self.max_batch:
                    waiting.remove(item)
                    batch.append(item)
                    rows += item.rows
            deadline = first.arrived + self.timeout_s
            while rows < self.max_batch and not stopping:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                if item.key == first.key and rows + item.rows <= self.max_batch:
                    batch.append(item)
                    rows += item.rows
                else:
                    waiting.append(item)
                    if item.key == first.key:
                        break  # full: run now, the rest goes in the next batch
            self._execute(batch, rows)

    def _execute(self, batch: list[_Item], rows: int) -> None:
        # Drop requests whose caller went away (cancelled futures); the rest
        # become RUNNING and can no longer be cancelled under our feet.
        batch = [it for it in batch if it.future.set_running_or_notify_cancel()]
        if not batch:
            return
        rows = sum(it.rows for it in batch)
        if self._on_batch is not None:
            try:
                self._on_batch(len(batch), rows)
            except Exception:
                pass
        if len(batch) == 1:
            self._run_one(batch[0])
            return
        try:
            merged = {name: np.concatenate([it.feeds[name] for it in batch], axis=0) for name in batch[0].feeds}
            outputs = self._run(merged)
            if any(np.ndim(v) == 0 or np.shape(v)[0] != rows for v in outputs.values()):
                raise _NotBatchable()
        except Exception:
            for it in batch:
                self._run_one(it)
            return
        start = 0
        for it in batch:
            stop = start + it.rows
            it.future.set_result({k: v[start:stop] for k, v in outputs.items()})
            start = stop

    def _run_one(self, item: _Item) -> None:
        try:
            result = self._run(item.feeds)
        except BaseException as exc:
            item.future.set_exception(exc)
        else:
            item.future.set_result(result)


class _NotBatchable(Exception):
    pass
