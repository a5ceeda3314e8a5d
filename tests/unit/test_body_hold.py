"""A request's body reservation outlives an abandoned job: the real Admission and MemoryBudget, a
job that goes on after the request's deadline (as a page being read does), the reservation the
ingress gate makes (BodyHold in its context variable)."""

from __future__ import annotations

import asyncio

import pytest

from preprocess_service.admission import Admission
from preprocess_service.budget import BodyHold, MemoryBudget, body_hold
from preprocess_service.errors import DeadlineExceeded

BODY = 3 * 2**20


def test_the_body_stays_reserved_until_the_abandoned_job_ends():
    async def go():
        admission = Admission(max_in_flight=1, max_queue=1, queue_timeout_s=1, deadline_s=0.2)
        pool = MemoryBudget(64 * 2**20)
        assert pool.try_reserve(BODY)
        hold = BodyHold(pool, BODY)
        finish = asyncio.Event()

        async def job():
            await finish.wait()  # a page still being read when the deadline passes
            return "late"

        token = body_hold.set(hold)
        try:
            with pytest.raises(DeadlineExceeded):
                await admission.admit(job)
        finally:
            body_hold.reset(token)
            hold.answered()  # what the gate does once the 503 is sent
        assert pool.in_use == BODY  # the job still holds the body
        finish.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert pool.in_use == 0 and admission.in_flight == 0

    asyncio.run(go())


def test_an_answered_request_releases_its_body_at_once():
    async def go():
        admission = Admission(max_in_flight=1, max_queue=1, queue_timeout_s=1, deadline_s=5)
        pool = MemoryBudget(64 * 2**20)
        assert pool.try_reserve(BODY)
        hold = BodyHold(pool, BODY)
        token = body_hold.set(hold)

        async def job():
            return "done"

        try:
            assert await admission.admit(job) == "done"
        finally:
            body_hold.reset(token)
            hold.answered()
        assert pool.in_use == 0
        hold.release()  # idempotent
        assert pool.in_use == 0

    asyncio.run(go())
