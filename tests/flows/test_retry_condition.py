"""`retry_unless_permanent` decides from the failed state's exception, in sync and async tasks alike."""

from __future__ import annotations

import pytest
from prefect import flow, task

from engine.brokers.base import TemporaryBrokerError, TokenExpired
from tasks.hooks import retry_unless_permanent

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _run_counting(error: Exception, *, is_async: bool) -> int:
    calls: list[int] = []

    if is_async:
        @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_unless_permanent)
        async def failing() -> None:
            calls.append(1)
            raise error
    else:
        @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_unless_permanent)  # type: ignore[no-redef]
        def failing() -> None:
            calls.append(1)
            raise error

    @flow
    async def run() -> None:
        await failing(return_state=True) if is_async else failing(return_state=True)  # type: ignore[misc]

    import asyncio

    asyncio.run(run())
    return len(calls)


@pytest.mark.parametrize("is_async", [True, False])
def test_a_permanent_error_is_not_retried(is_async: bool) -> None:
    assert _run_counting(TokenExpired("token expired"), is_async=is_async) == 1


@pytest.mark.parametrize("is_async", [True, False])
def test_a_temporary_error_is_retried(is_async: bool) -> None:
    assert _run_counting(TemporaryBrokerError("503"), is_async=is_async) == 3
