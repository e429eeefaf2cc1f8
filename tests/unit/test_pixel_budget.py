"""The decode budget of input images: pixels in flight never exceed it, waiters go in order,
and a waiter that gives up does not hold budget."""

from __future__ import annotations

import asyncio

from reelforge.api.images import _PixelBudget


def test_waiters_get_budget_in_order_as_it_is_released() -> None:
    async def scenario() -> list[str]:
        budget = _PixelBudget(100)
        order: list[str] = []
        first = await budget.acquire(60)

        async def take(name: str, pixels: int) -> int:
            held = await budget.acquire(pixels)
            order.append(name)
            return held

        second = asyncio.create_task(take("second", 60))
        third = asyncio.create_task(take("third", 50))
        await asyncio.sleep(0)
        assert order == []  # 60 + 60 > 100; the third queues behind the second
        budget.release(first)
        held = await second
        assert order == ["second"]
        budget.release(held)
        await third
        return order

    assert asyncio.run(scenario()) == ["second", "third"]


def test_an_image_larger_than_the_budget_still_runs_alone() -> None:
    async def scenario() -> int:
        budget = _PixelBudget(100)
        return await budget.acquire(500)

    assert asyncio.run(scenario()) == 100


def test_a_canceled_waiter_holds_nothing() -> None:
    async def scenario() -> bool:
        budget = _PixelBudget(100)
        first = await budget.acquire(100)
        waiter = asyncio.create_task(budget.acquire(50))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        budget.release(first)
        later = await asyncio.wait_for(budget.acquire(100), 1)
        return later == 100

    assert asyncio.run(scenario())
