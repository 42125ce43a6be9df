"""The batcher over a real store: every answer's row is committed before the answer goes out,
a log that cannot be written fails the batch's answers (never silently), and a caller who
gave up gets no row."""

from __future__ import annotations

import asyncio
import time

import pytest

from plinth.services import telemetry
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.serving.batcher import Batcher
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.scoring import Job, JobResult
from tests.support import churn_model, churn_record, churn_table


@pytest.fixture
def churn(registry: Registry) -> ServedModel:
    train = churn_table()
    return registry.load(
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    )


def _job(records: list[object], request_id: str = "req") -> Job:
    now = time.perf_counter()
    return Job(list(records), request_id, now, now + 60.0)


async def _serve(model: ServedModel, writer: LogWriter, jobs: list[Job]) -> list[JobResult]:
    batcher = Batcher(model, writer)
    batcher.start()
    try:
        # Queued together, so they are scored (and committed) as one batch.
        replies = [batcher.enqueue(job) for job in jobs]
        return list(await asyncio.gather(*replies))
    finally:
        await batcher.close()


def test_every_answer_is_committed_before_it_is_returned(
    registry: Registry, churn: ServedModel
) -> None:
    writer = LogWriter(registry.store)
    writer.start()
    jobs = [_job([churn_record(age=20 + i)], f"req-{i}") for i in range(5)]
    jobs.append(_job([churn_record(age=7 + 20), churn_record(age=8 + 20)], "req-pair"))
    try:
        results = asyncio.run(_serve(churn, writer, jobs))
    finally:
        writer.close()

    ids = [a["prediction_id"] for r in results for a in r.answers]
    assert len(ids) == 7 and all(r.error is None for r in results)
    for result, job in zip(results, jobs, strict=True):
        for answer, record in zip(result.answers, job.records, strict=True):
            logged = registry.store.get_prediction(answer["prediction_id"])
            assert logged.request_id == job.request_id
            assert logged.input == record
            assert logged.output["prediction"] == answer["prediction"]


def test_a_log_that_cannot_be_written_fails_the_answers(
    registry: Registry, churn: ServedModel
) -> None:
    writer = LogWriter(registry.store)
    writer.start()
    with registry.store._engine.begin() as conn:  # the log's table goes away under it
        conn.exec_driver_sql("ALTER TABLE predictions RENAME TO predictions_gone")
    try:
        results = asyncio.run(
            _serve(churn, writer, [_job([churn_record(age=21)]), _job([churn_record(age=22)])])
        )
    finally:
        writer.close()
        with registry.store._engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE predictions_gone RENAME TO predictions")

    for failed in results:  # the whole batch: none of its rows were committed
        assert failed.error is not None and failed.error.code.startswith("store.")
        assert "prediction log" in failed.error.message
        assert failed.error.hint


def _requests(model: ServedModel, outcome: str) -> float:
    labels = (model.name, str(model.version), "champion", outcome)
    return float(telemetry.REQUESTS.labels(*labels)._value.get())


def test_a_caller_who_gave_up_gets_no_log_row(registry: Registry, churn: ServedModel) -> None:
    writer = LogWriter(registry.store)
    writer.start()
    ok, late = _requests(churn, "ok"), _requests(churn, "model.deadline_exceeded")

    async def scenario() -> tuple[JobResult, list[str]]:
        batcher = Batcher(churn, writer)
        batcher.start()
        try:
            kept = batcher.enqueue(_job([churn_record(age=1 + 20)], "kept"))
            abandoned = batcher.enqueue(_job([churn_record(age=2 + 20)], "abandoned"))
            abandoned.cancel()  # e.g. past its deadline, answered by the fallback instead
            return await kept, [str(r.request_id) for r in registry.store.list_predictions()]
        finally:
            await batcher.close()

    try:
        kept, logged = asyncio.run(scenario())
    finally:
        writer.close()
    assert kept.error is None
    assert logged == ["kept"]
    # Counted as what its caller got from this version: a miss, not a success.
    assert _requests(churn, "ok") - ok == 1
    assert _requests(churn, "model.deadline_exceeded") - late == 1
