"""The Motia Python stream client (iii-motia==1.0.0rc5, ``motia/stream_client.py``) against the
stream port, with state written through iii-sdk (clients.md §1.6, §2.5; stream.md §8).

Values are objects whose ``id`` equals the item id (the client keys group state on ``data.id``).
After each sync the tests wait a few milliseconds before writing (clients.md §2.5.6).
"""

from __future__ import annotations

import asyncio
import time

import pytest

import harness
from harness import call, unique

pytestmark = pytest.mark.skipif(not harness.motia_available(), reason="iii-motia is not installed")


async def async_wait_for(pred, timeout: float = 5.0, interval: float = 0.01, message=None):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"condition not met within {timeout}s" + (f": {text}" if text else ""))
        await asyncio.sleep(interval)


async def close_client(client) -> None:
    """``close()`` schedules a ``leave`` per subscription and then ``disconnect()``; let them run
    (bounded poll on the client's socket) before making sure the socket is closed."""
    client.close()
    deadline = time.monotonic() + 2
    while client._ws is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await client.disconnect()


async def write(worker, function_id, payload):
    return await asyncio.to_thread(call, worker, function_id, payload)


def test_loader_does_not_import_motia_package():
    import sys

    mod = harness.load_motia_stream_client()
    assert hasattr(mod, "StreamClient")
    assert "motia" not in sys.modules  # the package __init__ was never executed
    assert harness.load_motia_stream_client() is mod


def test_group_and_item_subscriptions(server, worker):
    mod = harness.load_motia_stream_client()
    s, g = unique("motia"), "room"
    call(worker, "stream::set", {"stream_name": s, "group_id": g, "item_id": "m1", "data": {"id": "m1", "text": "one"}})
    call(worker, "stream::set", {"stream_name": s, "group_id": g, "item_id": "m2", "data": {"id": "m2", "text": "two"}})

    async def scenario():
        group_client = mod.StreamClient(server.stream_ws_url + "/")
        item_client = mod.StreamClient(server.stream_ws_url + "/?token=abc")
        await group_client.connect()
        await item_client.connect()
        try:
            group = group_client.subscribe_group(s, g)
            group_states: list = []
            group.add_change_listener(lambda st: group_states.append(list(st)))
            group_events: list = []
            group.on_event("ping", group_events.append)

            item = item_client.subscribe_item(s, g, "m1")
            item_states: list = []
            item.add_change_listener(lambda st: item_states.append(st))
            item_events: list = []
            item.on_event("ping", item_events.append)

            # Syncs: the group in insertion order, the item's value.
            await async_wait_for(lambda: group_states, message="no group sync")
            await async_wait_for(lambda: item_states, message="no item sync")
            assert group_states[0] == [{"id": "m1", "text": "one"}, {"id": "m2", "text": "two"}]
            assert item_states[0] == {"id": "m1", "text": "one"}
            await asyncio.sleep(0.005)

            # Live changes.
            await write(worker, "stream::set", {"stream_name": s, "group_id": g, "item_id": "m3", "data": {"id": "m3", "text": "three"}})
            await write(worker, "stream::set", {"stream_name": s, "group_id": g, "item_id": "m1", "data": {"id": "m1", "text": "uno"}})
            await async_wait_for(
                lambda: group.get_state()
                == [{"id": "m1", "text": "uno"}, {"id": "m2", "text": "two"}, {"id": "m3", "text": "three"}],
                message=lambda: repr(group.get_state()),
            )
            await async_wait_for(lambda: item.get_state() == {"id": "m1", "text": "uno"}, message=lambda: repr(item.get_state()))

            await write(worker, "stream::update", {"stream_name": s, "group_id": g, "item_id": "m1", "ops": [{"type": "set", "path": "seen", "value": True}]})
            await async_wait_for(lambda: item.get_state() == {"id": "m1", "text": "uno", "seen": True}, message=lambda: repr(item.get_state()))

            # Custom events: a send with id reaches the group and that item; without id only the group.
            await write(worker, "stream::send", {"stream_name": s, "group_id": g, "type": "ping", "data": {"n": 1}, "id": "m1"})
            await write(worker, "stream::send", {"stream_name": s, "group_id": g, "type": "ping", "data": {"n": 2}})
            await async_wait_for(lambda: len(group_events) == 2, message=lambda: repr(group_events))
            await async_wait_for(lambda: len(item_events) == 1, message=lambda: repr(item_events))
            assert group_events == [{"n": 1}, {"n": 2}]
            assert item_events == [{"n": 1}]

            # Deletes.
            await write(worker, "stream::delete", {"stream_name": s, "group_id": g, "item_id": "m1"})
            await async_wait_for(
                lambda: group.get_state() == [{"id": "m2", "text": "two"}, {"id": "m3", "text": "three"}],
                message=lambda: repr(group.get_state()),
            )
            await async_wait_for(lambda: item.get_state() is None, message=lambda: repr(item.get_state()))
            assert item_events == [{"n": 1}] and group_events == [{"n": 1}, {"n": 2}]
        finally:
            await close_client(group_client)
            await close_client(item_client)

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_subscribe_to_unknown_group_and_item(server, worker):
    mod = harness.load_motia_stream_client()
    s = unique("motia-empty")

    async def scenario():
        client = mod.StreamClient(server.stream_ws_url)
        await client.connect()
        try:
            group = client.subscribe_group(s, "nobody")
            item = client.subscribe_item(s, "nobody", "nothing")
            group_states, item_states = [], []
            group.add_change_listener(lambda st: group_states.append(list(st)))
            item.add_change_listener(lambda st: item_states.append(st))
            await async_wait_for(lambda: group_states, message="no group sync")
            await async_wait_for(lambda: item_states, message="no item sync")
            assert group_states == [[]]
            assert item_states == [None]
            await asyncio.sleep(0.005)
            await write(worker, "stream::set", {"stream_name": s, "group_id": "nobody", "item_id": "nothing", "data": {"id": "nothing"}})
            await async_wait_for(lambda: group.get_state() == [{"id": "nothing"}], message=lambda: repr(group.get_state()))
            await async_wait_for(lambda: item.get_state() == {"id": "nothing"}, message=lambda: repr(item.get_state()))
        finally:
            await close_client(client)

    asyncio.run(asyncio.wait_for(scenario(), 30))
