"""Wire details the Python SDK hides (it maps absent and null ``result`` both to ``None``), checked
with a raw WebSocket client that sends exactly what iii-sdk 0.23.0 sends (worker-protocol.md §3,
§6.10, §7; stream.md §3.3, §3.6, §3.9).
"""

from __future__ import annotations

import json
import uuid

import pytest

from harness import RawEngineClient, unique


@pytest.fixture
def raw(server):
    client = RawEngineClient(server.engine_url)
    hello = client.recv_json()
    assert hello["type"] == "workerregistered" and "features" not in hello
    yield client
    client.close()


def strip_trace(msg: dict) -> dict:
    """``traceparent``/``baggage`` MAY appear on results (worker-protocol.md §6.10)."""
    return {k: v for k, v in msg.items() if k not in ("traceparent", "baggage")}


def invoke(raw: RawEngineClient, function_id: str, data=..., **extra) -> dict:
    iid = str(uuid.uuid4())
    msg = {"type": "invokefunction", "invocation_id": iid, "function_id": function_id, **extra}
    if data is not ...:
        msg["data"] = data
    raw.send(msg)
    return strip_trace(raw.recv_until(lambda m: m.get("type") == "invocationresult" and m.get("invocation_id") == iid))


def test_get_miss_has_no_result_key_and_stored_null_has_result_null(raw):
    s = unique("rawget")
    miss = invoke(raw, "stream::get", {"stream_name": s, "group_id": "g", "item_id": "nope"})
    assert miss == {"type": "invocationresult", "invocation_id": miss["invocation_id"], "function_id": "stream::get"}
    invoke(raw, "stream::set", {"stream_name": s, "group_id": "g", "item_id": "n", "data": None})
    hit = invoke(raw, "stream::get", {"stream_name": s, "group_id": "g", "item_id": "n"})
    assert "result" in hit and hit["result"] is None and "error" not in hit


def test_send_answers_result_null(raw):
    s = unique("rawsend")
    reply = invoke(raw, "stream::send", {"stream_name": s, "group_id": "g", "type": "t", "data": 1})
    assert "result" in reply and reply["result"] is None and "error" not in reply


def test_call_without_data_key_as_python_sends_it(raw):
    reply = invoke(raw, "stream::list_all")  # no "data" key at all
    assert "error" not in reply, reply
    assert set(reply["result"]) == {"stream", "count"}
    err = invoke(raw, "stream::get")
    assert err["error"]["code"] == "deserialization_error"
    assert "result" not in err


def test_error_body_shape(raw):
    reply = invoke(raw, "e2e::nope", {"x": 1})
    assert set(reply) == {"type", "invocation_id", "function_id", "error"}
    assert reply["function_id"] == "e2e::nope"
    assert set(reply["error"]) <= {"code", "message", "stacktrace"}
    assert reply["error"]["code"] == "function_not_found"
    assert isinstance(reply["error"]["message"], str)


def test_void_calls_and_bad_messages_get_no_reply(raw):
    s = unique("rawvoid")
    raw.send({"type": "invokefunction", "invocation_id": str(uuid.uuid4()), "function_id": "stream::set", "action": {"type": "void"},
              "data": {"stream_name": s, "group_id": "g", "item_id": "v", "data": 1}})
    raw.send({"type": "invokefunction", "function_id": "engine::workers::register", "action": {"type": "void"},
              "data": {"runtime": "python", "version": "0.23.0", "name": "raw", "pid": 1, "isolation": None,
                       "namespace": None, "telemetry": {"language": None, "framework": "iii-py"}}})
    raw.send({"type": "invokefunction", "function_id": "e2e::unknown-void", "action": {"type": "void"}, "data": {}})
    raw.send("{not json")
    raw.send("   ")
    raw.send(json.dumps([1, 2, 3]))
    raw.send({"type": "somethingnew", "x": 1})
    raw.send({"type": "invokefunction"})  # function_id missing
    # Only the reply to this call may arrive; the void set above must have been applied.
    reply = invoke(raw, "stream::get", {"stream_name": s, "group_id": "g", "item_id": "v"})
    assert reply["result"] == 1
    raw.expect_silence(0.3)


def test_binary_json_message_and_websocket_ping(raw):
    s = unique("rawbin")
    iid = str(uuid.uuid4())
    raw.send(json.dumps({"type": "invokefunction", "invocation_id": iid, "function_id": "stream::set",
                         "data": {"stream_name": s, "group_id": "g", "item_id": "b", "data": {"bin": True}}}).encode())
    reply = strip_trace(raw.recv_until(lambda m: m.get("invocation_id") == iid))
    assert reply["result"] == {"old_value": None, "new_value": {"bin": True}}
    pong = raw.ws.ping(b"raw-ping")
    assert pong.wait(5), "no WebSocket Pong on the engine port"


def test_json_ping_is_answered_with_pong(raw):
    """worker-protocol.md §6.12 (a SHOULD in the §12 checklist)."""
    raw.send({"type": "ping"})
    assert raw.recv_until(lambda m: m.get("type") == "pong") == {"type": "pong"}
