"""Values near (but below) 1 MiB through iii-sdk 0.23.0 (clients.md §2.3.2).

iii-sdk 0.23.0 receives at most 1 MiB per WebSocket message: a larger server message makes it close
the socket (1009) and reconnect. Every server message in these tests stays below that limit (note
that a ``stream::set`` overwrite returns old and new value, so large items are only created, read,
listed, delivered to triggers and deleted). The worker's connection state is watched throughout:
any reconnect fails the test.
"""

from __future__ import annotations

import threading

from harness import Recorder, call, round_trip, unique

ONE_MIB = 1024 * 1024
# A value whose JSON is ~1,000,000 bytes: with the envelope, each message stays below 1 MiB.
BIG_CHARS = 1_000_000


def big_value(item_id: str, chars: int = BIG_CHARS, fill: str = "x") -> dict:
    return {"id": item_id, "blob": (fill * chars)[:chars]}


class ConnectionWatch:
    def __init__(self, worker) -> None:
        self.states: list[str] = []
        self._lock = threading.Lock()
        self._unsubscribe = worker.add_connection_state_listener(self._on_state)

    def _on_state(self, state: str) -> None:
        with self._lock:
            self.states.append(state)

    def assert_never_dropped(self) -> None:
        with self._lock:
            states = list(self.states)
        assert states and states[0] == "connected", states
        assert all(s == "connected" for s in states), f"the worker lost its connection: {states}"


def test_near_one_mib_value_round_trips(worker):
    watch = ConnectionWatch(worker)
    s, g = unique("big"), "g"
    value = big_value("big")
    assert len(value["blob"]) == BIG_CHARS

    assert call(worker, "stream::set", {"stream_name": s, "group_id": g, "item_id": "big", "data": value}) == {
        "old_value": None,
        "new_value": value,
    }
    assert call(worker, "stream::get", {"stream_name": s, "group_id": g, "item_id": "big"}) == value
    assert call(worker, "stream::list", {"stream_name": s, "group_id": g}) == [value]
    assert call(worker, "stream::delete", {"stream_name": s, "group_id": g, "item_id": "big"}) == {"old_value": value}
    assert call(worker, "stream::get", {"stream_name": s, "group_id": g, "item_id": "big"}) is None
    watch.assert_never_dropped()


def test_several_large_values_listed_below_one_mib(worker):
    watch = ConnectionWatch(worker)
    s, g = unique("bigs"), "g"
    values = [big_value(f"v{i}", 230_000, fill=chr(ord("a") + i)) for i in range(4)]
    for v in values:
        call(worker, "stream::set", {"stream_name": s, "group_id": g, "item_id": v["id"], "data": v})
    listed = call(worker, "stream::list", {"stream_name": s, "group_id": g})
    assert listed == values
    watch.assert_never_dropped()


def test_near_one_mib_trigger_payload(worker):
    watch = ConnectionWatch(worker)
    s, g = unique("bigtrg"), "g"
    rec = Recorder()
    fid = unique("e2e::big-handler")
    worker.register_function(fid, lambda data: rec.add(data))
    worker.register_trigger({"type": "stream", "function_id": fid, "config": {"stream_name": s}})
    round_trip(worker)

    value = big_value("t1")
    call(worker, "stream::set", {"stream_name": s, "group_id": g, "item_id": "t1", "data": value})
    (frame,) = rec.wait_count(1, timeout=10)
    assert frame["id"] == "t1"
    assert frame["event"] == {"type": "create", "data": value}
    watch.assert_never_dropped()


def test_large_inbound_message_from_worker_is_accepted(worker):
    """Messages from workers may be far larger than 1 MiB (default limit 64 MiB); a send returns
    null, so nothing large comes back to this 1 MiB-limited client."""
    watch = ConnectionWatch(worker)
    s = unique("bigin")
    data = {"blob": "y" * (3 * ONE_MIB)}
    assert call(worker, "stream::send", {"stream_name": s, "group_id": "g", "type": "bulk", "data": data}) is None
    assert call(worker, "stream::get", {"stream_name": s, "group_id": "g", "item_id": "x"}) is None
    watch.assert_never_dropped()


def test_non_ascii_value_round_trips(worker):
    """The SDK escapes non-ASCII as \\uXXXX (6 bytes per char); the server may send raw UTF-8."""
    watch = ConnectionWatch(worker)
    s = unique("bigutf")
    value = {"id": "u", "text": "é\u2603\U0001F600" * 40_000}
    assert call(worker, "stream::set", {"stream_name": s, "group_id": "g", "item_id": "u", "data": value})["new_value"] == value
    assert call(worker, "stream::get", {"stream_name": s, "group_id": "g", "item_id": "u"}) == value
    watch.assert_never_dropped()
