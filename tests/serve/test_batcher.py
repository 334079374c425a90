"""Micro-batching under concurrent requests: one model call for many requests, a bounded queue,
timeouts, failures isolated to their request, and a shutdown that drains the queue."""

import asyncio
import threading
import time

import httpx
import pytest

from trustlab.core.exceptions import InputError
from trustlab.serve.app import create_app


class Stub:
    """Mixin for a GuardedClassifier whose predict can be slowed or poisoned once the service is up."""

    delay = 0.0
    poison = None  # a pixel value that makes predict fail (an InputError), for the whole batch

    def predict(self, x):
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        if self.poison is not None and bool((x == self.poison).any()):
            raise InputError("poisoned input")
        return super().predict(x)


@pytest.fixture
def stub(guard):
    cls = type("StubGuard", (Stub, type(guard)), {})
    stub = cls(guard.classifier, guard.detector, guard.threshold)
    stub.threads = set()
    return stub


def post(client, x, **kwargs):
    return client.post("/v1/predict", json={"inputs": x.tolist()}, **kwargs)


def test_concurrent_requests_share_one_model_call(guard, calm, config_factory, async_serving):
    async def scenario():
        async with async_serving(guard, config_factory(max_batch=8, max_wait_ms=500)) as (client, app):
            batcher = app.state.service.batcher
            before = batcher.model_calls
            responses = await asyncio.gather(*(post(client, calm[i : i + 1]) for i in range(8)))
            assert [r.status_code for r in responses] == [200] * 8
            assert batcher.model_calls - before == 1
            labels = [r.json()["predictions"][0]["label"] for r in responses]
            assert labels == guard.predict(calm[:8]).labels.tolist()  # each request got its own answer
            metrics = (await client.get("/metrics")).text
            assert "trustlab_batch_inputs_sum 8.0" in metrics and "trustlab_batch_inputs_count 1.0" in metrics

    asyncio.run(scenario())


def test_batches_respect_max_batch(guard, calm, config_factory, async_serving):
    async def scenario():
        async with async_serving(guard, config_factory(max_batch=4, max_wait_ms=500)) as (client, app):
            batcher = app.state.service.batcher
            before = batcher.model_calls
            responses = await asyncio.gather(*(post(client, calm[i : i + 1]) for i in range(10)))
            assert [r.status_code for r in responses] == [200] * 10
            assert batcher.model_calls - before == 3  # 4 + 4 + 2
            big = await post(client, calm[:6])  # a request larger than max_batch runs on its own
            assert big.status_code == 200 and len(big.json()["predictions"]) == 6

    asyncio.run(scenario())


def test_full_queue_is_503_with_retry_after(stub, calm, config_factory, async_serving):
    async def scenario():
        config = config_factory(max_batch=1, max_wait_ms=0, queue_size=1)
        async with async_serving(stub, config) as (client, app):
            stub.delay = 0.3
            responses = await asyncio.gather(*(post(client, calm[i : i + 1]) for i in range(5)))
            statuses = sorted(r.status_code for r in responses)
            assert set(statuses) == {200, 503} and statuses.count(503) >= 2 and statuses.count(200) <= 2
            for r in responses:
                if r.status_code == 503:
                    assert r.headers["retry-after"] == "1" and "queue of waiting requests is full" in r.text
            stub.delay = 0.0
            assert 'trustlab_rejected_total{reason="queue_full"}' in (await client.get("/metrics")).text

    asyncio.run(scenario())


def test_timed_out_requests_are_503_and_never_scored(stub, calm, config_factory, async_serving):
    async def scenario():
        config = config_factory(max_batch=1, max_wait_ms=0, timeout_s=0.15, queue_size=8)
        async with async_serving(stub, config) as (client, app):
            batcher = app.state.service.batcher
            stub.delay = 0.4
            before = batcher.model_calls
            responses = await asyncio.gather(*(post(client, calm[i : i + 1]) for i in range(3)))
            assert [r.status_code for r in responses] == [503] * 3
            assert all(r.headers["retry-after"] == "1" and "no answer within 0.15 s" in r.text for r in responses)
            await asyncio.sleep(0.6)  # the first call finishes; the two others, abandoned while queued, are skipped
            assert batcher.model_calls - before == 1
            stub.delay = 0.0

    asyncio.run(scenario())


def test_a_failing_input_fails_only_its_request(stub, calm, config_factory, async_serving):
    async def scenario():
        async with async_serving(stub, config_factory(max_batch=8, max_wait_ms=300)) as (client, app):
            stub.poison = 0.123
            poisoned = calm[:1].clone()
            poisoned[0, 0, 0, 0] = 0.123
            responses = await asyncio.gather(post(client, calm[:1]), post(client, poisoned), post(client, calm[1:3]))
            assert [r.status_code for r in responses] == [200, 422, 200]
            assert responses[1].json()["detail"] == "inputs: poisoned input"
            # the model only ever ran on the model thread, never on the event loop's
            assert {name.rsplit("_", 1)[0] for name in stub.threads} == {"trustlab-model"}

    asyncio.run(scenario())


def test_unavailable_record_means_no_acknowledged_alarm(guard, alarming, calm, config_factory, async_serving):
    async def scenario():
        async with async_serving(guard, config_factory()) as (client, app):
            record = app.state.service.record

            def broken(rows):
                if rows:
                    raise OSError("disk full")

            record.append = broken
            refused = await post(client, alarming[:2])
            assert refused.status_code == 503 and "alarm record is unavailable" in refused.text
            assert refused.headers["retry-after"] == "1"
            assert (await post(client, calm[:2])).status_code == 200  # nothing to record: answered

    asyncio.run(scenario())


def test_shutdown_drains_the_queue(stub, calm, config_factory):
    async def scenario():
        app = create_app(config_factory(max_batch=1, max_wait_ms=0, queue_size=16), guard=stub)
        service = app.state.service
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            async with app.router.lifespan_context(app):
                while not service.ready:
                    await asyncio.sleep(0.02)
                stub.delay = 0.1
                pending = [asyncio.create_task(post(client, calm[i : i + 1])) for i in range(6)]
                for _ in range(1000):  # until some are queued behind the running call
                    if service.batcher.depth:
                        break
                    await asyncio.sleep(0.002)
                assert service.batcher.depth
            # the lifespan has ended: the queue was drained before the batcher stopped
            assert all(task.done() for task in pending)
            assert [task.result().status_code for task in pending] == [200] * 6
            late = await post(client, calm[:1])
            assert late.status_code == 503 and "not ready (stopping)" in late.text

    asyncio.run(scenario())
