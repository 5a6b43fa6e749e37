"""The eight built-in ``stream::*`` functions through iii-sdk (stream.md §1, §3; worker-protocol.md §7-§9).

Result shapes are compared with ``==`` on whole values: results MUST NOT carry extra fields
(stream.md §3.1). Each test uses its own stream names so tests can share one server.
"""

from __future__ import annotations

import time

import pytest
from iii import InvocationError, TriggerAction

from harness import byte_sorted, call, call_error, unique, wait_for


def k(stream: str, group: str, item: str, **extra):
    return {"stream_name": stream, "group_id": group, "item_id": item, **extra}


# ---------------------------------------------------------------------------------------------
# set / get / delete
# ---------------------------------------------------------------------------------------------


def test_set_create_then_overwrite_exact_shapes(worker):
    s, g = unique("set"), "g1"
    v1 = {"id": "a", "n": 1, "tags": ["x", "y"], "nested": {"ok": True, "none": None}}
    v2 = {"id": "a", "n": 2}

    assert call(worker, "stream::set", k(s, g, "a", data=v1)) == {"old_value": None, "new_value": v1}
    assert call(worker, "stream::set", k(s, g, "a", data=v2)) == {"old_value": v1, "new_value": v2}
    assert call(worker, "stream::get", k(s, g, "a")) == v2


def test_set_null_value_is_an_item(worker):
    s = unique("setnull")
    assert call(worker, "stream::set", k(s, "g", "n", data=None)) == {"old_value": None, "new_value": None}
    # A stored null keeps its group alive and is listed (stream.md §1).
    assert call(worker, "stream::list", {"stream_name": s, "group_id": "g"}) == [None]
    assert call(worker, "stream::list_groups", {"stream_name": s}) == ["g"]
    assert call(worker, "stream::get", k(s, "g", "n")) is None
    assert call(worker, "stream::set", k(s, "g", "n", data=7)) == {"old_value": None, "new_value": 7}
    assert call(worker, "stream::get", k(s, "g", "n")) == 7


def test_get_miss_returns_none(worker):
    s = unique("getmiss")
    assert call(worker, "stream::get", k(s, "g", "missing")) is None
    call(worker, "stream::set", k(s, "g", "present", data={"id": "present"}))
    assert call(worker, "stream::get", k(s, "g", "missing")) is None
    assert call(worker, "stream::get", k(s, "other-group", "present")) is None
    assert call(worker, "stream::get", k(s, "g", "present")) == {"id": "present"}


def test_delete_existing_and_missing_exact_shapes(worker):
    s = unique("del")
    v = {"id": "d", "x": [1, 2, 3]}
    call(worker, "stream::set", k(s, "g", "d", data=v))
    call(worker, "stream::set", k(s, "g", "keep", data={"id": "keep"}))

    assert call(worker, "stream::delete", k(s, "g", "d")) == {"old_value": v}
    assert call(worker, "stream::get", k(s, "g", "d")) is None
    # Deleting a missing item succeeds with old_value null (stream.md §3.4).
    assert call(worker, "stream::delete", k(s, "g", "d")) == {"old_value": None}
    assert call(worker, "stream::delete", k(s, "nogroup", "x")) == {"old_value": None}
    assert call(worker, "stream::list", {"stream_name": s, "group_id": "g"}) == [{"id": "keep"}]


def test_json_kinds_round_trip(worker):
    s = unique("kinds")
    values = {
        "int": 42,
        "neg": -7,
        "i64max": 9223372036854775807,
        "i64min": -9223372036854775808,
        "u64max": 18446744073709551615,
        "float": 2.0,
        "frac": 0.1,
        "bool": False,
        "str": "héllo \u2603 \U0001F600 \"quoted\" \\ \n\t",
        "empty_str": "",
        "arr": [1, "two", None, [3], {"four": 4}],
        "empty_obj": {},
        "empty_arr": [],
    }
    for name, value in values.items():
        assert call(worker, "stream::set", k(s, "g", name, data=value))["new_value"] == value
    for name, value in values.items():
        got = call(worker, "stream::get", k(s, "g", name))
        assert got == value, name
        assert type(got) is type(value), f"{name}: JSON kind changed ({type(got).__name__})"
    whole = {"doc": values}
    call(worker, "stream::set", k(s, "g2", "doc", data=whole))
    got = call(worker, "stream::get", k(s, "g2", "doc"))
    assert got == whole
    assert isinstance(got["doc"]["float"], float) and isinstance(got["doc"]["int"], int)


# ---------------------------------------------------------------------------------------------
# update / send
# ---------------------------------------------------------------------------------------------


def test_update_result_shape_without_errors_has_no_errors_key(worker):
    s = unique("upd")
    result = call(
        worker,
        "stream::update",
        k(s, "g", "c", ops=[{"type": "set", "path": "id", "value": "c"}, {"type": "increment", "path": "n", "by": 3}]),
    )
    assert result == {"old_value": None, "new_value": {"id": "c", "n": 3}}
    result = call(worker, "stream::update", k(s, "g", "c", ops=[{"type": "decrement", "path": "n", "by": 1}]))
    assert result == {"old_value": {"id": "c", "n": 3}, "new_value": {"id": "c", "n": 2}}
    assert call(worker, "stream::get", k(s, "g", "c")) == {"id": "c", "n": 2}


def test_update_with_failed_op_reports_errors_and_still_writes(worker):
    s = unique("upderr")
    call(worker, "stream::set", k(s, "g", "c", data={"n": "x"}))
    result = call(
        worker,
        "stream::update",
        k(s, "g", "c", ops=[{"type": "increment", "path": "n", "by": 1}, {"type": "set", "path": "ok", "value": 1}]),
    )
    assert set(result) == {"old_value", "new_value", "errors"}
    assert result["old_value"] == {"n": "x"}
    assert result["new_value"] == {"n": "x", "ok": 1}
    assert len(result["errors"]) == 1
    err = result["errors"][0]
    assert set(err) - {"doc_url"} == {"op_index", "code", "message"}
    assert (err["op_index"], err["code"]) == (0, "increment.not_number")
    assert isinstance(err["message"], str) and err["message"]
    assert call(worker, "stream::get", k(s, "g", "c")) == {"n": "x", "ok": 1}


def test_send_returns_none_and_stores_nothing(worker):
    s = unique("send")
    assert call(worker, "stream::send", {"stream_name": s, "group_id": "g", "type": "ping", "data": {"x": 1}}) is None
    assert call(worker, "stream::send", {"stream_name": s, "group_id": "g", "type": "", "data": None, "id": "i1"}) is None
    assert call(worker, "stream::send", {"stream_name": s, "group_id": "g", "type": "t", "data": [1], "id": None}) is None
    assert call(worker, "stream::list", {"stream_name": s, "group_id": "g"}) == []
    assert call(worker, "stream::list_groups", {"stream_name": s}) == []
    assert call(worker, "stream::get", k(s, "g", "i1")) is None


# ---------------------------------------------------------------------------------------------
# list / list_groups / list_all
# ---------------------------------------------------------------------------------------------


def test_list_returns_values_in_first_insertion_order(worker):
    s, g = unique("list"), "room"
    assert call(worker, "stream::list", {"stream_name": s, "group_id": g}) == []
    for item in ["zeta", "alpha", "mid"]:
        call(worker, "stream::set", k(s, g, item, data={"id": item, "v": 1}))
    assert call(worker, "stream::list", {"stream_name": s, "group_id": g}) == [
        {"id": "zeta", "v": 1},
        {"id": "alpha", "v": 1},
        {"id": "mid", "v": 1},
    ]
    # Overwriting keeps the position; delete + re-create moves the item to the end (stream.md §1).
    call(worker, "stream::set", k(s, g, "zeta", data={"id": "zeta", "v": 2}))
    call(worker, "stream::update", k(s, g, "alpha", ops=[{"type": "set", "path": "v", "value": 3}]))
    assert call(worker, "stream::list", {"stream_name": s, "group_id": g}) == [
        {"id": "zeta", "v": 2},
        {"id": "alpha", "v": 3},
        {"id": "mid", "v": 1},
    ]
    call(worker, "stream::delete", k(s, g, "zeta"))
    call(worker, "stream::set", k(s, g, "zeta", data={"id": "zeta", "v": 4}))
    assert call(worker, "stream::list", {"stream_name": s, "group_id": g}) == [
        {"id": "alpha", "v": 3},
        {"id": "mid", "v": 1},
        {"id": "zeta", "v": 4},
    ]
    # Other groups of the stream are separate.
    assert call(worker, "stream::list", {"stream_name": s, "group_id": "room2"}) == []


def test_list_groups_sorted_and_reflects_deletes(worker):
    s = unique("lg")
    assert call(worker, "stream::list_groups", {"stream_name": s}) == []
    groups = ["b", "a", "Z", "a-1", "é", "~"]
    for grp in groups:
        call(worker, "stream::set", k(s, grp, "x", data=1))
    call(worker, "stream::set", k(s, "a", "y", data=2))
    assert call(worker, "stream::list_groups", {"stream_name": s}) == byte_sorted(groups)

    # Deleting the last item of a group removes the group immediately (stream.md §1).
    call(worker, "stream::delete", k(s, "b", "x"))
    assert call(worker, "stream::list_groups", {"stream_name": s}) == byte_sorted(set(groups) - {"b"})
    call(worker, "stream::delete", k(s, "a", "x"))
    assert "a" in call(worker, "stream::list_groups", {"stream_name": s})
    call(worker, "stream::delete", k(s, "a", "y"))
    assert call(worker, "stream::list_groups", {"stream_name": s}) == byte_sorted(set(groups) - {"a", "b"})


def test_names_with_colons_are_not_confused(worker):
    """improvements.md j: keys are unambiguous, listings use no prefix matching."""
    a = unique("colon")
    ab = a + ":b"
    call(worker, "stream::set", k(a, "g1", "x", data=0))
    call(worker, "stream::set", k(ab, "g2", "x", data=0))
    call(worker, "stream::set", k(a, "b:c", "x", data=1))
    call(worker, "stream::set", k(ab, "c", "x", data=2))

    assert call(worker, "stream::list_groups", {"stream_name": a}) == ["b:c", "g1"]
    assert call(worker, "stream::list_groups", {"stream_name": ab}) == ["c", "g2"]
    assert call(worker, "stream::get", k(a, "b:c", "x")) == 1
    assert call(worker, "stream::get", k(ab, "c", "x")) == 2
    assert call(worker, "stream::list", {"stream_name": a, "group_id": "b:c"}) == [1]

    listing = call(worker, "stream::list_all", omit_payload=True)
    mine = [entry for entry in listing["stream"] if entry["id"] in (a, ab)]
    assert mine == [{"id": a, "groups": ["b:c", "g1"]}, {"id": ab, "groups": ["c", "g2"]}]


def test_unusual_names_round_trip(worker):
    base = unique("names")
    names = ["with space", "a/b", "50%", "star*", "nul\x00byte", "emoji\U0001F680", "e\u0301", "x" * 4096, "é" * 2048]
    for name in names:
        stream = base + name[:40]
        call(worker, "stream::set", k(stream, name, name, data={"id": name}))
        assert call(worker, "stream::get", k(stream, name, name)) == {"id": name}
        assert call(worker, "stream::list", {"stream_name": stream, "group_id": name}) == [{"id": name}]
        assert call(worker, "stream::list_groups", {"stream_name": stream}) == [name]


def test_list_all_without_payload(worker):
    """The Python SDK drops ``data`` when there is no payload; list_all must treat it as null."""
    s1, s2 = unique("la1"), unique("la2")
    call(worker, "stream::set", k(s1, "g2", "x", data=1))
    call(worker, "stream::set", k(s1, "g1", "x", data=1))
    call(worker, "stream::set", k(s2, "only", "x", data=1))

    result = call(worker, "stream::list_all", omit_payload=True)
    assert set(result) == {"stream", "count"}
    assert result["count"] == len(result["stream"])
    ids = [entry["id"] for entry in result["stream"]]
    assert ids == byte_sorted(ids)
    assert len(ids) == len(set(ids))
    for entry in result["stream"]:
        assert set(entry) == {"id", "groups"}
        assert entry["groups"] == byte_sorted(entry["groups"]) and entry["groups"]
    by_id = {entry["id"]: entry["groups"] for entry in result["stream"]}
    assert by_id[s1] == ["g1", "g2"]
    assert by_id[s2] == ["only"]

    # payload None (also no data key), an object with extra keys and an array are accepted too.
    for payload in (None, {}, {"anything": 1}, []):
        again = call(worker, "stream::list_all", payload)
        by_id = {entry["id"]: entry["groups"] for entry in again["stream"]}
        assert by_id[s1] == ["g1", "g2"] and by_id[s2] == ["only"]

    # Emptied streams disappear.
    call(worker, "stream::delete", k(s2, "only", "x"))
    after = call(worker, "stream::list_all", omit_payload=True)
    assert s2 not in [entry["id"] for entry in after["stream"]]


def test_list_all_exact_on_fresh_server(server_factory, make_worker):
    srv = server_factory()
    w = make_worker(srv)
    assert call(w, "stream::list_all", omit_payload=True) == {"stream": [], "count": 0}
    call(w, "stream::set", k("beta", "g", "x", data=1))
    call(w, "stream::set", k("alpha", "z", "x", data=1))
    call(w, "stream::set", k("alpha", "a", "x", data=None))
    call(w, "stream::send", {"stream_name": "gamma", "group_id": "g", "type": "t", "data": 1})
    assert call(w, "stream::list_all", omit_payload=True) == {
        "stream": [{"id": "alpha", "groups": ["a", "z"]}, {"id": "beta", "groups": ["g"]}],
        "count": 2,
    }
    call(w, "stream::delete", k("beta", "g", "x"))
    assert call(w, "stream::list_all") == {"stream": [{"id": "alpha", "groups": ["a", "z"]}], "count": 1}


# ---------------------------------------------------------------------------------------------
# Errors: deserialization_error, STREAM_INVALID_NAME, function_not_found
# ---------------------------------------------------------------------------------------------

BAD_INPUTS = [
    ("stream::set", {"stream_name": "s", "group_id": "g", "item_id": "i"}),  # data missing
    ("stream::set", {"stream_name": "s", "group_id": "g", "item_id": 5, "data": 1}),
    ("stream::set", None),
    ("stream::get", {"stream_name": "s", "group_id": "g"}),
    ("stream::get", {"stream_name": "s", "group_id": "g", "item_id": 5}),
    ("stream::get", ["s", "g", "i"]),
    ("stream::get", None),
    ("stream::delete", {"stream_name": None, "group_id": "g", "item_id": "i"}),
    ("stream::update", {"stream_name": "s", "group_id": "g", "item_id": "i"}),  # ops missing
    ("stream::update", {"stream_name": "s", "group_id": "g", "item_id": "i", "ops": "x"}),
    ("stream::send", {"stream_name": "s", "group_id": "g", "data": 1}),  # type missing
    ("stream::send", {"stream_name": "s", "group_id": "g", "type": "t"}),  # data missing
    ("stream::send", {"stream_name": "s", "group_id": "g", "type": 1, "data": 1}),
    ("stream::list", {"stream_name": "s"}),
    ("stream::list", {"stream_name": "s", "group_id": 1}),
    ("stream::list_groups", {}),
    ("stream::list_groups", None),
    ("stream::list_all", 5),
    ("stream::list_all", "x"),
]


@pytest.mark.parametrize("function_id,payload", BAD_INPUTS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_INPUTS)])
def test_deserialization_error(worker, function_id, payload):
    err = call_error(worker, function_id, payload)
    assert isinstance(err, InvocationError)
    assert err.code == "deserialization_error", (err.code, err.message)
    assert err.message.startswith(f"Failed to deserialize input for {function_id}"), err.message
    assert err.function_id == function_id


def test_set_without_payload_is_deserialization_error(worker):
    """trigger() without payload sends no ``data`` key: null payload (worker-protocol.md §3 rule 5)."""
    err = call_error(worker, "stream::set", omit_payload=True)
    assert err.code == "deserialization_error"


def test_failed_decode_writes_nothing(worker):
    s = unique("nowrite")
    call_error(worker, "stream::set", {"stream_name": s, "group_id": "g", "item_id": "i"})
    call_error(worker, "stream::update", {"stream_name": s, "group_id": "g", "item_id": "i", "ops": [{"type": "bogus"}]})
    assert call(worker, "stream::get", k(s, "g", "i")) is None
    assert call(worker, "stream::list_groups", {"stream_name": s}) == []


INVALID_NAMES = [
    ("stream::set", {"stream_name": "", "group_id": "g", "item_id": "i", "data": 1}),
    ("stream::set", {"stream_name": "s", "group_id": "", "item_id": "i", "data": 1}),
    ("stream::set", {"stream_name": "s", "group_id": "g", "item_id": "", "data": 1}),
    ("stream::set", {"stream_name": "s", "group_id": "g", "item_id": "x" * 4097, "data": 1}),
    ("stream::set", {"stream_name": "é" * 2048 + "a", "group_id": "g", "item_id": "i", "data": 1}),  # 4097 bytes
    ("stream::get", {"stream_name": "s", "group_id": "", "item_id": "i"}),
    ("stream::delete", {"stream_name": "s", "group_id": "g", "item_id": ""}),
    ("stream::update", {"stream_name": "", "group_id": "g", "item_id": "i", "ops": []}),
    ("stream::send", {"stream_name": "s", "group_id": "g", "type": "t", "data": 1, "id": ""}),
    ("stream::send", {"stream_name": "s", "group_id": "", "type": "t", "data": 1}),
    ("stream::list", {"stream_name": "s", "group_id": ""}),
    ("stream::list_groups", {"stream_name": ""}),
]


@pytest.mark.parametrize("function_id,payload", INVALID_NAMES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(INVALID_NAMES)])
def test_invalid_name(worker, function_id, payload):
    err = call_error(worker, function_id, payload)
    assert err.code == "STREAM_INVALID_NAME", (err.code, err.message)
    assert isinstance(err.message, str) and err.message


def test_invalid_name_writes_nothing_and_limit_is_inclusive(worker):
    s = unique("limit")
    call_error(worker, "stream::set", k(s, "", "i", data=1))
    assert call(worker, "stream::list_groups", {"stream_name": s}) == []
    # Exactly 4096 bytes is allowed.
    name = "é" * 2048
    assert call(worker, "stream::set", k(s, name, "i", data=1)) == {"old_value": None, "new_value": 1}
    assert call(worker, "stream::list_groups", {"stream_name": s}) == [name]


@pytest.mark.parametrize(
    "function_id",
    ["e2e::does-not-exist", "stream::listGroups", "engine::workers::list", "stream::set(nope)"],
)
def test_function_not_found(worker, function_id):
    err = call_error(worker, function_id, {"x": 1})
    assert err.code == "function_not_found"
    assert function_id in err.message
    assert err.function_id == function_id


def test_function_not_found_without_payload_answers_quickly(worker):
    started = time.monotonic()
    err = call_error(worker, "e2e::missing-no-payload", omit_payload=True)
    assert err.code == "function_not_found"
    assert time.monotonic() - started < 5


def test_error_is_invocation_error_with_code_and_message(worker):
    """How the Python SDK surfaces a remote error: ``InvocationError`` (an ``Exception``) with
    ``code``, ``message``, ``function_id`` and ``str(err) == f"{code}: {message}"``."""
    err = call_error(worker, "stream::get", {"stream_name": "s"})
    assert type(err) is InvocationError
    assert str(err) == f"{err.code}: {err.message}"
    assert err.invocation_id  # the SDK's own UUID


# ---------------------------------------------------------------------------------------------
# Call actions and engine::workers::register
# ---------------------------------------------------------------------------------------------


def test_void_call_is_executed_without_reply(worker):
    s = unique("void")
    assert call(worker, "stream::set", k(s, "g", "v", data={"id": "v"}), action=TriggerAction.Void()) is None
    assert wait_for(lambda: call(worker, "stream::get", k(s, "g", "v")) == {"id": "v"})


def test_enqueue_is_refused_and_not_executed(worker):
    s = unique("enq")
    err = call_error(worker, "stream::set", k(s, "g", "e", data=1), action=TriggerAction.Enqueue(queue="jobs"))
    assert err.code == "enqueue_error"
    assert call(worker, "stream::get", k(s, "g", "e")) is None


def test_engine_workers_register_sync_call(worker):
    result = call(worker, "engine::workers::register", {"runtime": "python", "name": "extra", "pid": None, "x": [1]})
    assert result == {"success": True}
