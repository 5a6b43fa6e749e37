"""iii-sdk 0.25.0 in classic mode (worker-protocol.md §1, §6.1, §6.11; clients.md §2.3.3-§2.3.4).

0.25.0 enters its newer "observe" protocol only if ``workerregistered`` lists ``features``; our server
never sends them, so it must behave like 0.23. It sends an explicit ``"result": null`` when a handler
returns ``None`` (0.23 omits ``result``); the server must treat both as "no value".

Run in the second environment:  .venv025/bin/python -m pytest tests/python/test_sdk025_classic.py
Skipped unless the installed iii-sdk is 0.25.x.
"""

from __future__ import annotations

import pytest

import harness
from harness import Recorder, assert_stays, call, call_error, round_trip, unique, wait_for

pytestmark = [
    pytest.mark.skipif(
        not harness.sdk_version().startswith("0.25."),
        reason=f"needs iii-sdk 0.25.x (installed: {harness.sdk_version()})",
    ),
    pytest.mark.filterwarnings("ignore:register_trigger is deprecated:DeprecationWarning"),
]


def k(stream, group, item, **extra):
    return {"stream_name": stream, "group_id": group, "item_id": item, **extra}


def test_classic_mode_stream_functions(worker):
    assert worker.get_connection_state() == "connected"
    assert worker._engine_features == frozenset()  # no `features` in workerregistered (0.25 internals)
    s = unique("c25")
    assert call(worker, "stream::set", k(s, "g", "a", data={"id": "a"})) == {"old_value": None, "new_value": {"id": "a"}}
    assert call(worker, "stream::set", k(s, "g", "b", data={"id": "b"})) == {"old_value": None, "new_value": {"id": "b"}}
    assert call(worker, "stream::set", k(s, "g", "a", data={"id": "a", "v": 2})) == {
        "old_value": {"id": "a"},
        "new_value": {"id": "a", "v": 2},
    }
    assert call(worker, "stream::get", k(s, "g", "a")) == {"id": "a", "v": 2}
    assert call(worker, "stream::get", k(s, "g", "missing")) is None
    assert call(worker, "stream::list", {"stream_name": s, "group_id": "g"}) == [{"id": "a", "v": 2}, {"id": "b"}]
    assert call(worker, "stream::list_groups", {"stream_name": s}) == ["g"]
    listing = call(worker, "stream::list_all", omit_payload=True)
    assert set(listing) == {"stream", "count"}
    assert {"id": s, "groups": ["g"]} in listing["stream"]
    result = call(worker, "stream::update", k(s, "g", "b", ops=[{"type": "increment", "path": "n", "by": 2}]))
    assert result == {"old_value": {"id": "b"}, "new_value": {"id": "b", "n": 2}}
    assert call(worker, "stream::delete", k(s, "g", "b")) == {"old_value": {"id": "b", "n": 2}}
    assert call(worker, "stream::send", {"stream_name": s, "group_id": "g", "type": "t", "data": 1}) is None
    err = call_error(worker, "stream::get", {"stream_name": s})
    assert err.code == "deserialization_error"
    assert call_error(worker, "e2e::missing").code == "function_not_found"


def test_classic_stream_trigger_fires(worker):
    s = unique("c25trg")
    rec = Recorder()
    fid = unique("e2e::h25")

    def handler(data, metadata=None):
        rec.add({"data": data, "metadata": metadata})
        return None  # 0.25 answers with an explicit "result": null

    worker.register_function(fid, handler)
    with pytest.warns(DeprecationWarning):
        worker.register_trigger({"type": "stream", "function_id": fid, "config": {"stream_name": s}, "metadata": {"v": 25}})
    round_trip(worker)

    call(worker, "stream::set", k(s, "g", "x", data={"id": "x"}))
    call(worker, "stream::set", k(s, "g", "x", data={"id": "x", "n": 1}))
    calls = rec.wait_count(2)
    assert [(c["data"]["id"], c["data"]["event"]) for c in calls] == [
        ("x", {"type": "create", "data": {"id": "x"}}),
        ("x", {"type": "update", "data": {"id": "x", "n": 1}}),
    ]
    assert all(c["metadata"] == {"v": 25} for c in calls)
    assert [c["data"]["seq"] for c in calls] == [1, 2]
    assert set(calls[0]["data"]) == {"type", "timestamp", "streamName", "groupId", "id", "event", "seq", "epoch"}


def test_explicit_null_result_from_worker_function(server, make_worker):
    caller, callee = make_worker(server, name="caller25"), make_worker(server, name="callee25")
    fid = unique("e2e::null25")
    callee.register_function(fid, lambda data: None)
    round_trip(callee)
    assert call(caller, fid, {"x": 1}) is None


def test_explicit_null_from_condition_calls_the_handler(worker):
    """A condition result of ``null`` is not ``false``: the handler runs (stream.md §7.1)."""
    s = unique("c25cond")
    handled, cond_calls = Recorder(), Recorder()
    cond_fid = unique("e2e::cond25")

    def condition(data):
        cond_calls.add(data["id"])
        return False if data["id"] == "skip" else None

    worker.register_function(cond_fid, condition)
    fid = unique("e2e::h25c")
    worker.register_function(fid, lambda data: handled.add(data["id"]))
    worker.register_trigger({"type": "stream", "function_id": fid, "config": {"stream_name": s, "condition_function_id": cond_fid}})
    round_trip(worker)

    call(worker, "stream::set", k(s, "g", "skip", data=1))
    call(worker, "stream::set", k(s, "g", "go", data=2))
    handled.wait_count(1)
    wait_for(lambda: cond_calls.items == ["skip", "go"], message=lambda: repr(cond_calls.items))
    assert_stays(lambda: handled.items == ["go"], 0.3, message=lambda: repr(handled.items))


def test_explicit_null_from_custom_providers(worker):
    """A provider answering ``"result": null`` means "no result" (worker-protocol.md §6.11):
    passed through for get, ``STREAM_SET_ERROR`` for set (stream.md §5)."""
    s = unique("c25prov")
    worker.register_function(f"stream::get({s})", lambda data: None if data["item_id"] == "none" else {"from": "provider", "item": data["item_id"]})
    worker.register_function(f"stream::set({s})", lambda data: None)
    round_trip(worker)

    assert call(worker, "stream::get", k(s, "g", "it")) == {"from": "provider", "item": "it"}
    assert call(worker, "stream::get", k(s, "g", "none")) is None
    err = call_error(worker, "stream::set", k(s, "g", "it", data=1))
    assert err.code == "STREAM_SET_ERROR", (err.code, err.message)
    assert err.message.startswith("Failed to set value")
