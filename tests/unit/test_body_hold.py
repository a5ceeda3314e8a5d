"""A request's body reservation outlives an abandoned job: the real Admission and MemoryBudget, a
job that goes on after the request's deadline (as a page being read does), the reservation the
ingress gate makes (BodyHold in its context variable)."""

from __future__ import annotations

import asyncio

from preprocess_service.admission import Admission
from preprocess_service.budget import BodyHold, MemoryBudget, body_hold
from preprocess_service.errors import DeadlineExceeded

BODY = 3 * 2**20


async def _admit_holding_a_body(deadline_s: float, job):
    """``job`` admitted as the gate runs it: a body reserved, its hold in the context variable,
    answered afterwards. The budget, the admission, the hold, and what admit returned or raised."""
    admission = Admission(max_in_flight=1, max_queue=1, queue_timeout_s=1, deadline_s=deadline_s)
    pool = MemoryBudget(64 * 2**20)
    assert pool.try_reserve(BODY)
    hold = BodyHold(pool, BODY)
    token = body_hold.set(hold)
    raised = result = None
    try:
        result = await admission.admit(job)
    except DeadlineExceeded as exc:
        raised = exc
    finally:
        body_hold.reset(token)
        hold.answered()  # what the gate does once the answer is sent
    return pool, admission, hold, result, raised


def test_the_body_stays_reserved_until_the_abandoned_job_ends():
    async def go():
        finish = asyncio.Event()

        async def job():
            await finish.wait()  # a page still being read when the deadline passes
            return "late"

        pool, admission, _, _, raised = await _admit_holding_a_body(0.2, job)
        assert isinstance(raised, DeadlineExceeded)
        assert pool.in_use == BODY  # the job still holds the body
        finish.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert pool.in_use == 0 and admission.in_flight == 0

    asyncio.run(go())


def test_an_answered_request_releases_its_body_at_once():
    async def go():
        async def job():
            return "done"

        pool, _, hold, result, raised = await _admit_holding_a_body(5, job)
        assert result == "done" and raised is None and pool.in_use == 0
        hold.release()  # idempotent
        assert pool.in_use == 0

    asyncio.run(go())
