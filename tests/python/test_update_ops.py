"""``stream::update`` operations (stream.md §3.5, §4).

Each case: the stored value before (``MISSING`` = no item), the ops, the expected ``new_value``
and the expected ``errors`` as ``(op_index, code)`` pairs (messages are checked to be non-empty
strings only; clients.md §3). The stored value afterwards must equal ``new_value``.
"""

from __future__ import annotations

import pytest

from harness import call, call_error, unique

MISSING = object()


def nested_object(depth: int) -> dict:
    """An object whose nesting depth (stream.md §4.5 merge) is exactly ``depth`` (>= 1)."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


CASES = [
    # --- the examples table of stream.md §4.6 ---
    ("inc-root-missing", MISSING, [{"type": "increment", "path": "", "by": 5}], 5, []),
    ("empty-ops-missing", MISSING, [], {}, []),
    (
        "inc-and-dotted-key",
        {"n": 1},
        [{"type": "increment", "path": "n", "by": 2}, {"type": "set", "path": "a.b", "value": True}],
        {"n": 3, "a.b": True},
        [],
    ),
    (
        "inc-not-number-then-set",
        {"n": "x"},
        [{"type": "increment", "path": "n", "by": 1}, {"type": "set", "path": "ok", "value": 1}],
        {"n": "x", "ok": 1},
        [(0, "increment.not_number")],
    ),
    ("merge-nested-replaces-array", {"a": [1]}, [{"type": "merge", "path": ["a", "b"], "value": {"c": 1}}], {"a": {"b": {"c": 1}}}, []),
    ("append-string", {"log": "ab"}, [{"type": "append", "path": "log", "value": "c"}], {"log": "abc"}, []),
    ("append-two-segments-missing", {}, [{"type": "append", "path": ["x", "y"], "value": "s"}], {"x": {"y": ["s"]}}, []),
    ("set-on-array", [1], [{"type": "set", "path": "k", "value": 1}], [1], [(0, "set.target_not_object")]),
    ("remove-proto", {"a": 1}, [{"type": "remove", "path": "__proto__"}], {"a": 1}, [(0, "remove.path.proto_polluted")]),
    # --- set ---
    ("set-root", {"a": 1}, [{"type": "set", "path": "", "value": {"x": 1}}], {"x": 1}, []),
    ("set-value-absent-is-null", {"a": 1}, [{"type": "set", "path": "k"}], {"a": 1, "k": None}, []),
    ("set-value-null", {}, [{"type": "set", "path": "k", "value": None}], {"k": None}, []),
    ("set-missing-item", MISSING, [{"type": "set", "path": "k", "value": [1, 2]}], {"k": [1, 2]}, []),
    ("set-on-string", "s", [{"type": "set", "path": "k", "value": 1}], "s", [(0, "set.target_not_object")]),
    # --- merge ---
    (
        "merge-root-shallow",
        {"a": 1, "b": {"c": 1}},
        [{"type": "merge", "value": {"b": {"d": 2}, "e": 3}}],
        {"a": 1, "b": {"d": 2}, "e": 3},
        [],
    ),
    ("merge-root-null-path", {"a": 1}, [{"type": "merge", "path": None, "value": {"b": 2}}], {"a": 1, "b": 2}, []),
    ("merge-root-empty-string", {"a": 1}, [{"type": "merge", "path": "", "value": {"a": 2}}], {"a": 2}, []),
    ("merge-root-empty-array", {"a": 1}, [{"type": "merge", "path": [], "value": {"c": 3}}], {"a": 1, "c": 3}, []),
    ("merge-root-non-object-is-noop", "str", [{"type": "merge", "value": {"x": 1}}], "str", []),
    ("merge-path-on-scalar-discards", 5, [{"type": "merge", "path": "k", "value": {"x": 1}}], {"k": {"x": 1}}, []),
    ("merge-string-path", {"k": {"a": 1}}, [{"type": "merge", "path": "k", "value": {"b": 2}}], {"k": {"a": 1, "b": 2}}, []),
    ("merge-missing-item", MISSING, [{"type": "merge", "value": {"x": 1}}], {"x": 1}, []),
    ("merge-not-object", {"a": 1}, [{"type": "merge", "value": [1]}], {"a": 1}, [(0, "merge.value.not_an_object")]),
    ("merge-proto-key", {"a": 1}, [{"type": "merge", "value": {"__proto__": 1}}], {"a": 1}, [(0, "merge.value.proto_polluted")]),
    (
        "merge-too-many-keys",
        {},
        [{"type": "merge", "value": {f"k{i}": i for i in range(1025)}}],
        {},
        [(0, "merge.value.too_many_keys")],
    ),
    ("merge-1024-keys-ok", {}, [{"type": "merge", "value": {f"k{i}": i for i in range(1024)}}], {f"k{i}": i for i in range(1024)}, []),
    ("merge-too-deep", {}, [{"type": "merge", "value": nested_object(17)}], {}, [(0, "merge.value.too_deep")]),
    ("merge-depth-16-ok", {}, [{"type": "merge", "value": nested_object(16)}], nested_object(16), []),
    # --- increment / decrement ---
    ("dec-root-missing", MISSING, [{"type": "decrement", "path": "", "by": 4}], -4, []),
    ("dec-keys", {"c": 10}, [{"type": "decrement", "path": "c", "by": 3}, {"type": "decrement", "path": "new", "by": 2}], {"c": 7, "new": -2}, []),
    ("inc-root-twice-missing", MISSING, [{"type": "increment", "path": "", "by": 1}, {"type": "increment", "path": "", "by": 2}], 3, []),
    ("inc-root-stored-number", 10, [{"type": "increment", "path": "", "by": -15}], -5, []),
    ("inc-to-unsigned", {"n": 9223372036854775807}, [{"type": "increment", "path": "n", "by": 1}], {"n": 9223372036854775808}, []),
    (
        "inc-u64-overflow",
        {"n": 18446744073709551615},
        [{"type": "increment", "path": "n", "by": 1}],
        {"n": 18446744073709551615},
        [(0, "increment.not_number")],
    ),
    (
        "dec-i64-min-overflow",
        {"n": -9223372036854775808},
        [{"type": "decrement", "path": "n", "by": 1}],
        {"n": -9223372036854775808},
        [(0, "decrement.not_number")],
    ),
    ("dec-missing-by-i64-min", {}, [{"type": "decrement", "path": "n", "by": -9223372036854775808}], {"n": 9223372036854775808}, []),
    ("inc-float", {"f": 1.5}, [{"type": "increment", "path": "f", "by": 2}], {"f": 3.5}, []),
    ("inc-null-field", {"n": None}, [{"type": "increment", "path": "n", "by": 1}], {"n": None}, [(0, "increment.not_number")]),
    ("inc-by-zero-typechecks", {"n": "s"}, [{"type": "increment", "path": "n", "by": 0}], {"n": "s"}, [(0, "increment.not_number")]),
    ("inc-on-array", [1, 2], [{"type": "increment", "path": "k", "by": 1}], [1, 2], [(0, "increment.target_not_object")]),
    ("dec-root-string", "s", [{"type": "decrement", "path": "", "by": 1}], "s", [(0, "decrement.not_number")]),
    (
        "root-inc-after-success-is-not-missing",
        MISSING,
        [{"type": "set", "path": "a", "value": 1}, {"type": "increment", "path": "", "by": 5}],
        {"a": 1},
        [(1, "increment.not_number")],
    ),
    # --- append ---
    ("append-root-missing-string", MISSING, [{"type": "append", "value": "hello"}], "hello", []),
    ("append-root-missing-object", MISSING, [{"type": "append", "path": "", "value": {"a": 1}}], [{"a": 1}], []),
    ("append-root-object", {}, [{"type": "append", "value": "x"}], {}, [(0, "append.type_mismatch")]),
    ("append-root-array", [1], [{"type": "append", "value": [2]}], [1, [2]], []),
    ("append-array-as-one-element", {"arr": [1]}, [{"type": "append", "path": "arr", "value": [2, 3]}], {"arr": [1, [2, 3]]}, []),
    ("append-non-string-to-string", {"s": "ab"}, [{"type": "append", "path": "s", "value": 5}], {"s": "ab"}, [(0, "append.type_mismatch")]),
    ("append-to-number", {"n": 1}, [{"type": "append", "path": "n", "value": 5}], {"n": 1}, [(0, "append.type_mismatch")]),
    ("append-to-null-nonstring", {"z": None}, [{"type": "append", "path": "z", "value": 7}], {"z": [7]}, []),
    ("append-to-null-string", {"z": None}, [{"type": "append", "path": ["z"], "value": "t"}], {"z": "t"}, []),
    ("append-missing-key-string", {}, [{"type": "append", "path": "k", "value": "str"}], {"k": "str"}, []),
    ("append-missing-key-other", {}, [{"type": "append", "path": "k", "value": 1}], {"k": [1]}, []),
    ("append-nested-parent-replaced", {"p": 1}, [{"type": "append", "path": ["p", "q"], "value": "s"}], {"p": {"q": ["s"]}}, []),
    ("append-nested-existing", {"p": {"q": "ab"}}, [{"type": "append", "path": ["p", "q"], "value": "c"}], {"p": {"q": "abc"}}, []),
    ("append-target-not-object", 3, [{"type": "append", "path": "k", "value": 1}], 3, [(0, "append.target_not_object")]),
    (
        "append-root-after-remove-success",
        MISSING,
        [{"type": "remove", "path": "nope"}, {"type": "append", "value": "x"}],
        {},
        [(1, "append.type_mismatch")],
    ),
    # --- remove ---
    ("remove-key", {"a": 1, "b": 2}, [{"type": "remove", "path": "a"}], {"b": 2}, []),
    ("remove-missing-key", {"a": 1}, [{"type": "remove", "path": "missing"}], {"a": 1}, []),
    ("remove-root-writes-null", {"a": 1}, [{"type": "remove", "path": ""}], None, []),
    ("remove-on-string", "s", [{"type": "remove", "path": "k"}], "s", [(0, "remove.target_not_object")]),
    # --- path validation (stream.md §4.3) ---
    ("path-too-deep", {}, [{"type": "merge", "path": ["a"] * 33, "value": {}}], {}, [(0, "merge.path.too_deep")]),
    ("path-too-deep-before-empty", {}, [{"type": "append", "path": [""] * 33, "value": 1}], {}, [(0, "append.path.too_deep")]),
    ("path-32-ok", {}, [{"type": "merge", "path": ["a"] * 32, "value": {"x": 1}}], None, []),  # value checked separately
    ("path-empty-segment", {}, [{"type": "merge", "path": ["a", ""], "value": {}}], {}, [(0, "merge.path.empty_segment")]),
    ("path-root-vs-empty-segment", {}, [{"type": "merge", "path": [""], "value": {"x": 1}}], {}, [(0, "merge.path.empty_segment")]),
    ("path-segment-too-long", {}, [{"type": "set", "path": "x" * 257, "value": 1}], {}, [(0, "set.path.segment_too_long")]),
    ("path-segment-256-ok", {}, [{"type": "set", "path": "x" * 256, "value": 1}], {"x" * 256: 1}, []),
    ("path-proto-constructor", {}, [{"type": "merge", "path": ["constructor"], "value": {}}], {}, [(0, "merge.path.proto_polluted")]),
    ("path-proto-prototype", {}, [{"type": "increment", "path": "prototype", "by": 1}], {}, [(0, "increment.path.proto_polluted")]),
    ("path-proto-decrement", {}, [{"type": "decrement", "path": "__proto__", "by": 1}], {}, [(0, "decrement.path.proto_polluted")]),
    ("path-proto-set", {}, [{"type": "set", "path": "__proto__", "value": 1}], {}, [(0, "set.path.proto_polluted")]),
    ("path-proto-append", {}, [{"type": "append", "path": ["ok", "prototype"], "value": 1}], {}, [(0, "append.path.proto_polluted")]),
    (
        "errors-list-several",
        {"n": 1, "s": "x"},
        [
            {"type": "increment", "path": "s", "by": 1},
            {"type": "set", "path": "a", "value": 1},
            {"type": "remove", "path": "__proto__"},
            {"type": "append", "path": "n", "value": 1},
            {"type": "increment", "path": "n", "by": 1},
        ],
        {"n": 2, "s": "x", "a": 1},
        [(0, "increment.not_number"), (2, "remove.path.proto_polluted"), (3, "append.type_mismatch")],
    ),
]


def _deep_path_value() -> dict:
    value: dict = {"x": 1}
    for _ in range(32):
        value = {"a": value}
    return value


@pytest.mark.parametrize("name,stored,ops,expected,errors", CASES, ids=[c[0] for c in CASES])
def test_update_op(worker, name, stored, ops, expected, errors):
    if name == "path-32-ok":
        expected = _deep_path_value()
    s, g, item = unique("ops"), "g", "it"
    key = {"stream_name": s, "group_id": g, "item_id": item}
    if stored is not MISSING:
        call(worker, "stream::set", {**key, "data": stored})

    result = call(worker, "stream::update", {**key, "ops": ops})

    expected_keys = {"old_value", "new_value"} | ({"errors"} if errors else set())
    assert set(result) == expected_keys, result
    assert result["old_value"] == (None if stored is MISSING else stored)
    assert result["new_value"] == expected
    got_errors = result.get("errors", [])
    assert [(e["op_index"], e["code"]) for e in got_errors] == errors
    for e in got_errors:
        assert set(e) - {"doc_url"} == {"op_index", "code", "message"}
        assert isinstance(e["message"], str) and e["message"]
    # The result is always written (stream.md §3.5).
    assert call(worker, "stream::get", key) == expected
    assert call(worker, "stream::list", {"stream_name": s, "group_id": g}) == [expected]


def test_number_kinds_after_increment(worker):
    s = unique("numkind")
    key = {"stream_name": s, "group_id": "g", "item_id": "n"}
    call(worker, "stream::set", {**key, "data": {"i": 1, "f": 1.0}})
    result = call(
        worker,
        "stream::update",
        {**key, "ops": [{"type": "increment", "path": "i", "by": 1}, {"type": "increment", "path": "f", "by": 1}]},
    )
    assert result["new_value"] == {"i": 2, "f": 2.0}
    assert type(result["new_value"]["i"]) is int
    assert type(result["new_value"]["f"]) is float


def test_increment_error_message_names_the_path(worker):
    s = unique("msg")
    key = {"stream_name": s, "group_id": "g", "item_id": "n"}
    call(worker, "stream::set", {**key, "data": {"n": "x"}})
    result = call(worker, "stream::update", {**key, "ops": [{"type": "increment", "path": "n", "by": 1}]})
    assert result["errors"][0]["message"].startswith("Expected number at path 'n'")


MALFORMED_OPS = [
    [{"type": "Set", "path": "k", "value": 1}],
    [{"type": "unknown"}],
    [{"path": "k", "value": 1}],
    [{"type": "set", "path": ["k"], "value": 1}],
    [{"type": "set", "value": 1}],
    [{"type": "increment", "path": "n", "by": 1.0}],
    [{"type": "increment", "path": "n", "by": "1"}],
    [{"type": "increment", "path": "n", "by": 9223372036854775808}],
    [{"type": "decrement", "path": "n"}],
    [{"type": "merge", "path": ["a", 1], "value": {}}],
    [{"type": "merge", "path": 5, "value": {}}],
    [{"type": "merge", "path": "a"}],
    [{"type": "append", "path": "a"}],
    [{"type": "remove"}],
    ["set"],
    [None],
    # One malformed op fails the whole request, even after valid ones.
    [{"type": "set", "path": "k", "value": 1}, {"type": "increment", "path": "n", "by": 0.5}],
]


@pytest.mark.parametrize("ops", MALFORMED_OPS, ids=[f"malformed-{i}" for i in range(len(MALFORMED_OPS))])
@pytest.mark.parametrize("existing", [False, True], ids=["missing", "existing"])
def test_malformed_ops_fail_whole_request(worker, ops, existing):
    s = unique("bad")
    key = {"stream_name": s, "group_id": "g", "item_id": "i"}
    if existing:
        call(worker, "stream::set", {**key, "data": {"n": 1}})
    err = call_error(worker, "stream::update", {**key, "ops": ops})
    assert err.code == "deserialization_error", (err.code, err.message)
    assert err.message.startswith("Failed to deserialize input for stream::update")
    assert call(worker, "stream::get", key) == ({"n": 1} if existing else None)
    assert call(worker, "stream::list_groups", {"stream_name": s}) == (["g"] if existing else [])
