"""Micro-batching: concurrent requests answered by one forward pass, after a bounded wait.

The first waiting request starts a batch; the batch is run when it holds ``max_batch``
sequences or ``max_wait_ms`` after it started, whichever comes first. The model runs in one
worker thread (the runtimes release the GIL), so the event loop keeps accepting requests.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from recbole_sasrec_ext.serving.recommender import BundleRecommender, Recommendation, Request


@dataclass
class _Job:
    requests: list[Request]
    k: int
    exclude_seen: bool
    future: asyncio.Future


class MicroBatcher:
    """Collects :class:`Request` lists from concurrent callers into shared forward passes.

    Parameters
    ----------
    rec : BundleRecommender
    max_batch : int
        Sequences per forward pass (a single larger job is run alone).
    max_wait_ms : float
        Longest time the first request of a batch waits for others.
    """

    def __init__(self, rec: BundleRecommender, max_batch: int = 64, max_wait_ms: float = 2.0):
        self.rec, self.max_batch, self.max_wait = rec, max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="model")
        self.task: asyncio.Task | None = None
        self.batches = 0  # forward passes run (for /health)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish the queued work, then stop the worker."""
        while not self.queue.empty():
            await asyncio.sleep(0.005)
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, requests: list[Request], k: int, exclude_seen: bool
                     ) -> list[Recommendation]:
        """Answers to ``requests`` (top-``k`` each), once their batch has run."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Job(requests, k, exclude_seen, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0].requests)
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                jobs.append(job)
                size += len(job.requests)
            await loop.run_in_executor(self.executor, self._answer, jobs)
            self.batches += 1

    def _answer(self, jobs: list[_Job]) -> None:
        """Run the batch (worker thread) and hand each job its answers."""
        loop = jobs[0].future.get_loop()
        groups: dict[tuple[int, bool], list[_Job]] = {}
        for job in jobs:
            groups.setdefault((job.k, job.exclude_seen), []).append(job)
        for (k, exclude), same in groups.items():
            try:
                answers = self.rec.answer([r for job in same for r in job.requests], k, exclude)
            except Exception as exc:  # noqa: BLE001 (reported to each caller as a 500)
                for job in same:
                    loop.call_soon_threadsafe(_set_exception, job.future, exc)
                continue
            begin = 0
            for job in same:
                part = answers[begin : begin + len(job.requests)]
                begin += len(job.requests)
                loop.call_soon_threadsafe(_set_result, job.future, part)


def _set_result(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
