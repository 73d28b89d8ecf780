"""Metrics sent off the training thread: the loop never waits on the tracking server, an outage costs no
training time, and what could not be sent is kept and sent when the server answers again."""
from __future__ import annotations

import collections
import sys
import threading
import time

from .runs import _metrics
from .store import mlflow_client, tracking_uri


class MetricSender:
    """Metrics logged off the training thread. `log` only appends to a bounded queue and never waits on the
    network; a daemon thread sends what has queued up once a second (`interval_s`) in batches of up to 1,000,
    keeps what could not be sent and tries again with back-off (1 s doubling to 5 s) until the server
    answers. Past `max_pending` the oldest are dropped (the train stage's files keep the whole curve; evaluate
    sends what the run lacks)."""

    def __init__(self, run_id: str, max_pending: int = 100_000, interval_s: float = 1.0,
                 retry_s: tuple[float, float] = (1.0, 5.0)):
        self.run_id, self.max_pending, self.interval_s, self.retry_s = run_id, max_pending, interval_s, retry_s
        self.sent = self.dropped = self.failures = 0
        self._pending: collections.deque = collections.deque()  # (sequence number, Metric)
        self._seq, self._deadline = 0, None
        self._cond = threading.Condition()
        self._client = mlflow_client()  # imports mlflow here: importing it in two threads at once breaks
        self._thread = threading.Thread(target=self._send_loop, name="mlflow-metrics", daemon=True)
        self._thread.start()

    def log(self, metrics: dict, step: int) -> None:
        batch = _metrics(metrics, step)  # stamped now, sent later
        with self._cond:
            for metric in batch:
                self._seq += 1
                self._pending.append((self._seq, metric))
            while len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.dropped += 1

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def close(self, wait_s: float = 30.0) -> int:
        """Send what is queued, waiting at most wait_s; returns how many metrics are still unsent."""
        with self._cond:
            self._deadline = time.monotonic() + wait_s
            self._cond.notify()
        self._thread.join(wait_s + 1)
        return self.pending()

    def _pause(self, seconds: float, flush: bool = False) -> bool:
        """Wait `seconds` (never past close's deadline; with flush, not at all once close was called); False
        once that deadline has passed."""
        until = time.monotonic() + seconds
        with self._cond:
            while True:
                now, end = time.monotonic(), until
                if self._deadline is not None:
                    if now >= self._deadline:
                        return False
                    if flush:
                        return True
                    end = min(until, self._deadline)
                if now >= end:
                    return True
                self._cond.wait(end - now)

    def _send_loop(self) -> None:
        client, delay = self._client, self.retry_s[0]
        while True:
            with self._cond:
                if not self._pending and self._deadline is not None:
                    return
                batch = [item for _, item in zip(range(1000), self._pending)]
            if not batch:
                self._pause(self.interval_s, flush=True)
                continue
            try:
                client.log_batch(self.run_id, metrics=[metric for _, metric in batch])
            except Exception as e:  # noqa: BLE001 - any failure to reach the store: keep and retry
                self.failures += 1
                if self.failures == 1:
                    print(f"WARNING: MLflow logging failed ({type(e).__name__}: {str(e)[:200]}); training goes on, "
                          f"metrics are kept and sent when {tracking_uri()} answers again", file=sys.stderr)
                if not self._pause(delay):
                    return
                delay = min(delay * 2, self.retry_s[1])
                continue
            with self._cond:
                last = batch[-1][0]
                while self._pending and self._pending[0][0] <= last:
                    self._pending.popleft()
                    self.sent += 1
                more = len(self._pending) >= 1000
            if delay > self.retry_s[0]:
                print(f"MLflow logging resumed at {tracking_uri()}; sending the metrics kept meanwhile",
                      file=sys.stderr)
            delay = self.retry_s[0]
            if not more and not self._pause(self.interval_s, flush=True):
                return
