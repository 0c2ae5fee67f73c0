"""Learning curves logged while a network trains, through outages of the store.

Curves are logged with the iteration as `step`, in batches, while training runs. A
tracking server that stops answering does not stop training: the curves wait in memory
until it answers again, and the last send waits out an outage of up to `OUTAGE_S`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from lottery.tracking.store import (
    answers,
    first_line,
    note,
    patiently,
    raise_store_problem,
    transient,
)

# MLflow loads after `lottery.tracking.store`, which sets its environment first.
# isort: split
from mlflow.entities import Metric

if TYPE_CHECKING:
    from mlflow import MlflowClient


class LiveCurves:
    """Learning curves logged while training runs: each evaluation's values carry the
    time they were measured, and are sent every `every_s` seconds and at `flush`.

    A store that does not answer never stops training: what could not be sent stays in
    memory and goes with a later send (tried again after 2, 4, ... up to 30 s, when the
    server's /health answers), and `flush` at the end of training waits out the rest of
    an outage (`patiently`). Values keep their timestamps, so a batch sent twice (its
    answer lost) is stored once."""

    def __init__(
        self, client: MlflowClient, run_ids: Sequence[str], every_s: float, uri: str = ""
    ) -> None:
        self.client, self.run_ids, self.every_s = client, list(run_ids), every_s
        inner = getattr(client, "_tracking_client", None)
        self.uri = uri or str(getattr(inner, "tracking_uri", "") or "")
        self.pending: dict[str, list[Metric]] = {}
        self.sent = time.monotonic()
        self.failures = 0
        self.retry_at = 0.0

    def __call__(self, iteration: int, rows: Mapping[int, Mapping[str, float]]) -> None:
        now = int(time.time() * 1000)
        for k, values in rows.items():
            self.pending.setdefault(self.run_ids[k], []).extend(
                Metric(key, float(v), now, int(iteration)) for key, v in values.items()
            )
        clock = time.monotonic()
        if clock - self.sent >= self.every_s and clock >= self.retry_at:
            self._send(final=False)

    def buffered(self) -> int:
        """How many values wait to be sent."""
        return sum(len(m) for m in self.pending.values())

    def flush(self) -> None:
        """Send everything (at the end of training): waits out an outage of the store."""
        self._send(final=True)

    def _send(self, final: bool) -> None:
        if self.failures and not final and not answers(self.uri):
            self._defer(None)
            return
        for run_id in list(self.pending):
            metrics = self.pending[run_id]
            if metrics:
                batch = metrics

                def send(run_id: str = run_id, batch: list[Metric] = batch) -> None:
                    self.client.log_batch(run_id, metrics=batch)  # chunked by MLflow itself

                try:
                    if final:
                        patiently(self.uri, send, "sending the learning curves")
                    else:
                        send()
                except Exception as exc:
                    if final or not transient(exc):
                        raise_store_problem(exc, self.uri)
                        raise
                    self._defer(exc)
                    return
            del self.pending[run_id]
        if self.failures:
            note(f"the tracking store at {self.uri} answers again; the buffered curves were sent")
        self.failures, self.retry_at, self.sent = 0, 0.0, time.monotonic()

    def _defer(self, exc: Exception | None) -> None:
        """A send that found the store not answering: keep the values, try again later."""
        if not self.failures and exc is not None:
            note(
                f"the tracking store at {self.uri} does not answer ({first_line(exc)[:160]}); "
                "training goes on and the curves wait in memory until it does"
            )
        self.failures += 1
        self.retry_at = time.monotonic() + min(2.0 * 2 ** (self.failures - 1), 30.0)
