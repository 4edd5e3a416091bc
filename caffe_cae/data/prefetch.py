"""Batches loaded ahead on a background thread, handed out strictly in the order they were read.

Caffe's data layers fill ``prefetch`` batches (``data_param.prefetch``, default 4) on a thread
while the net computes.  Here one worker thread per layer runs the layer's ``load`` function
for one batch after the other, so records are read (and random draws made) in exactly the order
a synchronous loader would use; ``next()`` returns the oldest batch and queues one more.  An
error in the worker (a corrupt record) is raised by the ``next()`` that asks for that batch.
``depth`` 0, and the reference engine (no worker threads), load synchronously.  Nothing runs
before the first ``next()``: setting a layer up (shape inference, ``params``) reads no batch.
"""
from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, TypeVar

from caffe_cae import engine

T = TypeVar("T")


class Prefetcher(Generic[T]):
    def __init__(self, load: Callable[[], T], depth: int, name: str = "data"):
        self.load = load
        self.depth = max(0, int(depth))
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._pending: collections.deque[Future] = collections.deque()

    def next(self) -> T:
        threaded = self.depth > 0 and not engine.reference()
        if threaded:
            if self._pool is None:
                # one worker: batches are produced one after the other, in order
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"prefetch-{self.name}")
            while len(self._pending) < self.depth:
                self._pending.append(self._pool.submit(self.load))
        if self._pending:  # batches read ahead come first (also after a switch of engine)
            batch = self._pending.popleft().result()
            if threaded:
                self._pending.append(self._pool.submit(self.load))
            return batch
        return self.load()

    def close(self) -> None:
        """Stop loading ahead (batches being loaded finish; the rest are dropped)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
