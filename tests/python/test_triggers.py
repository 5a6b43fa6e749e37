"""``stream`` triggers through iii-sdk 0.23.0 (stream.md §2.3, §7.1, §7.4; worker-protocol.md §6.5-§6.7).

Negative checks ("never fires") always follow a positive barrier: either a later frame of the same
group delivered to the same trigger (frames of one group reach one trigger one at a time in ``seq``
order, stream.md §7.1) or a control trigger that has seen the frame, plus a short ``assert_stays``.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from harness import (
    RawEngineClient,
    Recorder,
    assert_stays,
    call,
    round_trip,
    shutdown_worker,
    unique,
    wait_for,
)

FRAME_KEYS = {"type", "timestamp", "streamName", "groupId", "id", "event", "seq", "epoch"}


def k(stream, group, item, **extra):
    return {"stream_name": stream, "group_id": group, "item_id": item, **extra}


def recording_function(worker, recorder: Recorder, fid: str | None = None, with_metadata: bool = False) -> str:
    fid = fid or unique("e2e::handler")
    if with_metadata:

        def handler(data, metadata=None):
            recorder.add({"data": data, "metadata": metadata})

    else:

        def handler(data):
            recorder.add(data)

    worker.register_function(fid, handler)
    return fid


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def snapshot(self) -> list[logging.LogRecord]:
        with self._lock:
            return list(self.records)


@pytest.fixture
def sdk_log():
    """Records of the SDK's ``iii.iii`` logger (where it logs triggerregistrationresult errors)."""
    logger = logging.getLogger("iii.iii")
    capture = LogCapture()
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)


# ---------------------------------------------------------------------------------------------


def test_stream_trigger_payloads_for_every_kind_of_change(worker):
    s, g = unique("trg"), "g1"
    rec = Recorder()
    fid = recording_function(worker, rec, with_metadata=True)
    worker.register_trigger(
        {"type": "stream", "function_id": fid, "config": {"stream_name": s}, "metadata": {"team": "a", "n": [1]}}
    )
    round_trip(worker)

    t0 = int(time.time() * 1000)
    call(worker, "stream::set", k(s, g, "a", data={"id": "a", "n": 1}))  # create
    call(worker, "stream::set", k(s, g, "a", data={"id": "a", "n": 2}))  # update
    call(worker, "stream::update", k(s, g, "b", ops=[{"type": "set", "path": "id", "value": "b"}]))  # create
    call(worker, "stream::set", k(s, "g2", "z", data={"id": "z"}))  # other group, own numbering
    call(worker, "stream::update", k(s, g, "a", ops=[{"type": "increment", "path": "n", "by": 1}]))  # update
    assert call(worker, "stream::delete", k(s, g, "missing")) == {"old_value": None}  # no event
    call(worker, "stream::get", k(s, g, "a"))  # reads never fire
    call(worker, "stream::list", {"stream_name": s, "group_id": g})
    call(worker, "stream::send", {"stream_name": s, "group_id": g, "type": "ping", "data": {"x": 1}, "id": "a"})
    call(worker, "stream::send", {"stream_name": s, "group_id": g, "type": "bcast", "data": None})
    call(worker, "stream::delete", k(s, g, "b"))  # delete
    call(worker, "stream::update", k(s, g, "a", ops=[{"type": "remove", "path": ""}]))  # update to null
    t1 = int(time.time() * 1000)

    calls = rec.wait_count(9)
    assert_stays(lambda: len(rec) == 9, 0.3, message=lambda: f"extra trigger calls: {rec.items[9:]!r}")

    for c in calls:
        assert c["metadata"] == {"team": "a", "n": [1]}
        frame = c["data"]
        assert set(frame) == FRAME_KEYS, frame  # no subscriptionId / reason in trigger payloads
        assert frame["type"] == "stream" and frame["streamName"] == s
        assert isinstance(frame["timestamp"], int) and t0 - 1000 <= frame["timestamp"] <= t1 + 1000
        assert isinstance(frame["epoch"], str) and frame["epoch"]
        assert isinstance(frame["seq"], int)

    main = [c["data"] for c in calls if c["data"]["groupId"] == g]
    other = [c["data"] for c in calls if c["data"]["groupId"] == "g2"]
    assert [(f["id"], f["event"]) for f in main] == [
        ("a", {"type": "create", "data": {"id": "a", "n": 1}}),
        ("a", {"type": "update", "data": {"id": "a", "n": 2}}),
        ("b", {"type": "create", "data": {"id": "b"}}),
        ("a", {"type": "update", "data": {"id": "a", "n": 3}}),
        ("a", {"type": "event", "event": {"type": "ping", "data": {"x": 1}}}),
        (None, {"type": "event", "event": {"type": "bcast", "data": None}}),
        ("b", {"type": "delete", "data": {"id": "b"}}),
        ("a", {"type": "update", "data": None}),
    ]
    # One trigger receives one group's frames in seq order; a fresh group counts from 1.
    assert [f["seq"] for f in main] == list(range(1, 9))
    assert len({f["epoch"] for f in main}) == 1
    stamps = [f["timestamp"] for f in main]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), stamps  # improvements.md n
    assert [(f["id"], f["event"], f["seq"]) for f in other] == [("z", {"type": "create", "data": {"id": "z"}}, 1)]


def test_trigger_without_config_is_refused_and_never_fires(worker, make_worker, server, sdk_log):
    """``register_trigger`` without config sends no ``config`` key; the server must refuse it with
    ``trigger_registration_failed`` (the SDK only logs it) and nothing else may be disturbed."""
    s = unique("noconf")
    bad, ctl = Recorder(), Recorder()
    bad_fid = recording_function(worker, bad)
    ctl_fid = recording_function(worker, ctl)

    before = set(worker._triggers)  # the SDK keeps its trigger messages by id (0.23.0 internals)
    worker.register_trigger({"type": "stream", "function_id": bad_fid})
    (trigger_id,) = set(worker._triggers) - before
    worker.register_trigger({"type": "stream", "function_id": ctl_fid, "config": {"stream_name": s}})
    round_trip(worker)

    def refusal_logged():
        return [
            r
            for r in sdk_log.snapshot()
            if r.msg.startswith("[iii] Trigger registration failed") and r.args and r.args[0] == trigger_id
        ]

    (record,) = wait_for(refusal_logged, 5, message="the SDK never logged a triggerregistrationresult error")
    assert record.args[1] == "stream"
    assert isinstance(record.args[2], str) and record.args[2]

    call(worker, "stream::set", k(s, "g", "x", data={"id": "x"}))
    call(worker, "stream::send", {"stream_name": s, "group_id": "g", "type": "t", "data": 1})
    call(worker, "stream::delete", k(s, "g", "x"))
    ctl.wait_count(3)
    assert_stays(lambda: len(bad) == 0, 0.3, message=lambda: f"refused trigger fired: {bad.items!r}")

    # The server and this connection keep working; the function itself was registered normally.
    assert call(worker, "stream::set", k(s, "g", "y", data=1)) == {"old_value": None, "new_value": 1}
    other = make_worker(server)
    assert call(other, bad_fid, {"direct": True}) is None
    assert bad.items == [{"direct": True}]
    server.assert_alive()


def test_raw_registertrigger_refusals(server):
    """Exact ``triggerregistrationresult`` frames (worker-protocol.md §6.5, §6.7; stream.md §7.1)."""
    raw = RawEngineClient(server.engine_url)
    try:
        hello = raw.recv_json()
        assert hello["type"] == "workerregistered"
        assert isinstance(hello["worker_id"], str) and hello["worker_id"]
        assert isinstance(hello["reattach_token"], str) and hello["reattach_token"]
        assert "features" not in hello

        s = unique("rawtrg")
        refusals = [
            ({"trigger_type": "stream", "function_id": "f::a"}, "trigger_registration_failed"),  # no config key
            ({"trigger_type": "stream", "function_id": "f::a", "config": None}, "trigger_registration_failed"),
            ({"trigger_type": "stream", "function_id": "f::a", "config": {}}, "trigger_registration_failed"),
            ({"trigger_type": "stream", "function_id": "f::a", "config": {"stream_name": ""}}, "trigger_registration_failed"),
            ({"trigger_type": "stream", "function_id": "f::a", "config": {"stream_name": 5}}, "trigger_registration_failed"),
            ({"trigger_type": "stream", "function_id": "f::a", "config": s}, "trigger_registration_failed"),
            (
                {"trigger_type": "stream", "function_id": "f::a", "config": {"stream_name": s, "group_id": 7}},
                "trigger_registration_failed",
            ),
            ({"trigger_type": "http", "function_id": "f::a", "config": {"api_path": "/x"}}, "trigger_type_not_found"),
        ]
        for fields, code in refusals:
            tid = unique("tid")
            raw.send({"type": "registertrigger", "id": tid, **fields})
            frame = raw.recv_until(lambda m: m.get("type") == "triggerregistrationresult" and m.get("id") == tid)
            assert set(frame) == {"type", "id", "trigger_type", "function_id", "error"}, frame
            assert frame["trigger_type"] == fields["trigger_type"]
            assert frame["function_id"] == fields["function_id"]
            assert set(frame["error"]) == {"code", "message"}
            assert frame["error"]["code"] == code, (fields, frame)
            assert isinstance(frame["error"]["message"], str) and frame["error"]["message"]
            if code == "trigger_type_not_found":
                assert "http" in frame["error"]["message"]

        # A valid registration is not acknowledged: the next frame is the result of the next call.
        raw.send({"type": "registertrigger", "id": unique("tid"), "trigger_type": "stream", "function_id": "f::a", "config": {"stream_name": s}})
        raw.send({"type": "invokefunction", "invocation_id": "00000000-0000-4000-8000-000000000001", "function_id": "stream::set",
                  "data": {"stream_name": s, "group_id": "g", "item_id": "i", "data": 1}})
        frame = {key: v for key, v in raw.recv_json().items() if key not in ("traceparent", "baggage")}
        assert frame == {
            "type": "invocationresult",
            "invocation_id": "00000000-0000-4000-8000-000000000001",
            "function_id": "stream::set",
            "result": {"old_value": None, "new_value": 1},
        }
    finally:
        raw.close()
    server.assert_alive()


def test_group_item_and_stream_filters(worker):
    s = unique("filt")
    s_other = s + ":other"
    by_item, by_group, any_, other_stream = Recorder(), Recorder(), Recorder(), Recorder()
    fid_item = recording_function(worker, by_item)
    fid_group = recording_function(worker, by_group)
    fid_any = recording_function(worker, any_)
    fid_other = recording_function(worker, other_stream)
    worker.register_trigger({"type": "stream", "function_id": fid_item, "config": {"stream_name": s, "item_id": "target"}})
    worker.register_trigger({"type": "stream", "function_id": fid_group, "config": {"stream_name": s, "group_id": "g1"}})
    # absent / null / "" filters mean "any" (stream.md §7.1)
    worker.register_trigger(
        {"type": "stream", "function_id": fid_any, "config": {"stream_name": s, "group_id": "", "item_id": None, "condition_function_id": ""}}
    )
    worker.register_trigger({"type": "stream", "function_id": fid_other, "config": {"stream_name": s_other}})
    round_trip(worker)

    call(worker, "stream::set", k(s_other, "g1", "target", data=0))
    call(worker, "stream::set", k(s, "g2", "target", data=1))
    call(worker, "stream::set", k(s, "g1", "other", data=2))
    call(worker, "stream::send", {"stream_name": s, "group_id": "g1", "type": "nobody", "data": 3})
    call(worker, "stream::set", k(s, "g1", "target", data=4))
    call(worker, "stream::send", {"stream_name": s, "group_id": "g1", "type": "hit", "data": 5, "id": "target"})

    def summary_of(rows):
        return sorted(rows, key=repr)

    def summary(rec):
        return summary_of((f["streamName"], f["groupId"], f["id"], f["event"]["type"]) for f in rec.items)

    # Item filter: only frames whose id is "target", in any group.
    items = by_item.wait_count(3)
    g1_items = [f for f in items if f["groupId"] == "g1"]
    assert [(f["id"], f["event"]) for f in g1_items] == [
        ("target", {"type": "create", "data": 4}),
        ("target", {"type": "event", "event": {"type": "hit", "data": 5}}),
    ]
    # Group filter: only g1 frames, in seq order.
    g1 = by_group.wait_count(4)
    assert [(f["id"], f["seq"]) for f in g1] == [("other", 1), (None, 2), ("target", 3), ("target", 4)]
    # No filter: everything of the stream (and nothing of the other stream).
    any_.wait_count(5)
    other_stream.wait_count(1)
    assert_stays(lambda: len(by_item) == 3 and len(by_group) == 4 and len(any_) == 5 and len(other_stream) == 1, 0.3)
    assert summary(by_item) == summary_of(
        [(s, "g1", "target", "create"), (s, "g1", "target", "event"), (s, "g2", "target", "create")]
    )
    assert summary(any_) == summary_of(
        [(s, "g2", "target", "create"), (s, "g1", "other", "create"), (s, "g1", None, "event"),
         (s, "g1", "target", "create"), (s, "g1", "target", "event")]
    )
    assert [(f["streamName"], f["id"]) for f in other_stream.items] == [(s_other, "target")]


def test_condition_function(worker):
    """Result exactly ``false`` skips; any other result (incl. no result) calls; an error skips."""
    s, g = unique("cond"), "g"
    cond_calls, handled = Recorder(), Recorder()
    decisions = {"skip": False, "go": True, "zero": 0, "none": None, "strfalse": "false", "obj": {"ok": False}}

    def condition(data, metadata=None):
        cond_calls.add({"data": data, "metadata": metadata})
        if data["id"] == "boom":
            raise RuntimeError("condition failed on purpose")
        return decisions[data["id"]]

    cond_fid = unique("e2e::cond")
    worker.register_function(cond_fid, condition)
    fid = recording_function(worker, handled, with_metadata=True)
    worker.register_trigger(
        {"type": "stream", "function_id": fid, "config": {"stream_name": s, "condition_function_id": cond_fid}, "metadata": {"m": 1}}
    )
    round_trip(worker)

    order = ["skip", "go", "boom", "zero", "none", "strfalse", "obj"]
    for item in order:
        call(worker, "stream::set", k(s, g, item, data={"v": item}))
    call(worker, "stream::set", k(s, g, "last", data={"v": "last"}))  # barrier: condition -> KeyError -> skipped
    decisions_expected_called = ["go", "zero", "none", "strfalse", "obj"]

    cond = cond_calls.wait_count(len(order) + 1)
    handled.wait_count(len(decisions_expected_called))
    assert_stays(lambda: len(handled) == len(decisions_expected_called), 0.3, message=lambda: repr(handled.items))

    assert [c["data"]["id"] for c in cond] == order + ["last"]
    # The condition gets the same payload as the handler, without metadata.
    assert all(c["metadata"] is None for c in cond)
    assert [h["data"]["id"] for h in handled.items] == decisions_expected_called
    assert all(h["metadata"] == {"m": 1} for h in handled.items)
    cond_by_id = {c["data"]["id"]: c["data"] for c in cond}
    for h in handled.items:
        assert h["data"] == cond_by_id[h["data"]["id"]]


def test_condition_timeout_skips_handler(server_factory, make_worker):
    srv = server_factory(stream={"timeouts": {"condition_ms": 500}})
    w = make_worker(srv)
    s, g = unique("condto"), "g"
    release = threading.Event()
    handled = Recorder()

    def condition(data):
        if data["id"] == "slow":
            release.wait(15)
        return True

    cond_fid = unique("e2e::slowcond")
    w.register_function(cond_fid, condition)
    fid = recording_function(w, handled)
    w.register_trigger({"type": "stream", "function_id": fid, "config": {"stream_name": s, "condition_function_id": cond_fid}})
    round_trip(w)
    try:
        started = time.monotonic()
        call(w, "stream::set", k(s, g, "slow", data=1))
        call(w, "stream::set", k(s, g, "fast", data=2))
        assert time.monotonic() - started < 2, "trigger dispatch must not delay writes"
        handled.wait_count(1, timeout=5)
        assert_stays(lambda: len(handled) == 1, 0.3)
        assert [(f["id"], f["event"]["data"]) for f in handled.items] == [("fast", 2)]
    finally:
        release.set()


def test_unregistered_trigger_stops_firing(worker):
    s = unique("unreg")
    rec, ctl = Recorder(), Recorder()
    fid = recording_function(worker, rec)
    ctl_fid = recording_function(worker, ctl)
    trigger = worker.register_trigger({"type": "stream", "function_id": fid, "config": {"stream_name": s}})
    worker.register_trigger({"type": "stream", "function_id": ctl_fid, "config": {"stream_name": s}})
    round_trip(worker)

    call(worker, "stream::set", k(s, "g", "one", data=1))
    rec.wait_count(1)
    trigger.unregister()
    round_trip(worker)
    call(worker, "stream::set", k(s, "g", "two", data=2))
    ctl.wait_count(2)
    assert_stays(lambda: len(rec) == 1, 0.3, message=lambda: repr(rec.items))
    assert [f["id"] for f in rec.items] == ["one"]


def test_triggers_of_a_disconnected_worker_are_removed(server, make_worker):
    """A trigger registered by worker A that calls a function of worker B disappears with A."""
    a, b = make_worker(server, name="trigger-owner"), make_worker(server, name="handler-owner")
    s = unique("owner")
    rec, ctl = Recorder(), Recorder()
    fid = recording_function(b, rec)
    ctl_fid = recording_function(b, ctl)
    a_fn = unique("e2e::a-alive")
    a.register_function(a_fn, lambda data: "alive")
    round_trip(b)
    a.register_trigger({"type": "stream", "function_id": fid, "config": {"stream_name": s}})
    b.register_trigger({"type": "stream", "function_id": ctl_fid, "config": {"stream_name": s}})
    round_trip(a)
    round_trip(b)

    call(b, "stream::set", k(s, "g", "before", data=1))
    rec.wait_count(1)
    assert call(b, a_fn) == "alive"

    shutdown_worker(a)

    def a_gone():
        from iii import InvocationError

        try:
            call(b, a_fn, timeout_ms=2000)
        except InvocationError as exc:
            return exc.code == "function_not_found"
        return False

    wait_for(a_gone, 5, message="functions of the disconnected worker were not removed")
    call(b, "stream::set", k(s, "g", "after", data=2))
    ctl.wait_count(2)
    assert_stays(lambda: len(rec) == 1, 0.3, message=lambda: repr(rec.items))
    assert [f["id"] for f in rec.items] == ["before"]
