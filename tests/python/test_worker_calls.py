"""Worker-to-worker calls relayed by the server (worker-protocol.md §5.5, §6.8-§6.11, §7).

Two iii-sdk workers in this process, plus a worker subprocess that is killed mid-call.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

from iii import InvocationError

from harness import HERE, Recorder, call, call_error, round_trip, shutdown_worker, unique, wait_for


class Background:
    """Run a blocking SDK call on a thread; collect its result or exception."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def run():
            try:
                self.result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, timeout: float) -> "Background":
        assert self.done.wait(timeout), f"call did not complete within {timeout}s"
        return self


def test_call_between_two_workers_returns_result(server, make_worker):
    caller, callee = make_worker(server, name="caller"), make_worker(server, name="callee")
    fid = unique("e2e::echo")
    seen = Recorder()

    def echo(data, metadata=None):
        seen.add({"data": data, "metadata": metadata})
        return {"got": data, "meta": metadata, "list": [1, 2.5, None, "x"]}

    callee.register_function(fid, echo)
    round_trip(callee)

    payload = {"a": 1, "nested": {"b": [True, None]}, "s": "héllo"}
    result = call(caller, fid, payload, metadata={"trace": "t-1"})
    assert result == {"got": payload, "meta": {"trace": "t-1"}, "list": [1, 2.5, None, "x"]}
    assert seen.items == [{"data": payload, "metadata": {"trace": "t-1"}}]

    # Without payload the SDK sends no data key; the callee receives null, no metadata.
    assert call(caller, fid, omit_payload=True) == {"got": None, "meta": None, "list": [1, 2.5, None, "x"]}


def test_call_between_two_workers_scalar_and_no_result(server, make_worker):
    caller, callee = make_worker(server, name="caller"), make_worker(server, name="callee")
    f_none, f_zero, f_list = unique("e2e::none"), unique("e2e::zero"), unique("e2e::list")
    callee.register_function(f_none, lambda data: None)
    callee.register_function(f_zero, lambda data: 0)
    callee.register_function(f_list, lambda data: [data, data])
    round_trip(callee)
    assert call(caller, f_none, {"x": 1}) is None
    assert call(caller, f_zero, {}) == 0
    assert call(caller, f_list, "s") == ["s", "s"]


def test_call_between_two_workers_raised_error(server, make_worker):
    caller, callee = make_worker(server, name="caller"), make_worker(server, name="callee")
    fid = unique("e2e::fail")

    def fail(data):
        raise ValueError(f"boom {data['n']}")

    callee.register_function(fid, fail)
    round_trip(callee)

    err = call_error(caller, fid, {"n": 42})
    assert isinstance(err, InvocationError)
    # The callee's error body is relayed unchanged (worker-protocol.md §7.2).
    assert err.code == "invocation_failed"
    assert err.message == "boom 42"
    assert err.function_id == fid
    assert isinstance(err.stacktrace, str) and "ValueError" in err.stacktrace

    # The callee's connection is still fine.
    assert call(callee, "stream::get", {"stream_name": "x", "group_id": "g", "item_id": "i"}) is None


def test_many_concurrent_calls_are_correlated(server, make_worker):
    caller, callee = make_worker(server, name="caller"), make_worker(server, name="callee")
    fid = unique("e2e::slow-square")

    def square(data):
        time.sleep(0.05 * (data % 3))
        return data * data

    callee.register_function(fid, square)
    round_trip(callee)
    calls = [Background(call, caller, fid, n) for n in range(20)]
    for n, bg in enumerate(calls):
        bg.wait(15)
        assert bg.error is None, bg.error
        assert bg.result == n * n


def test_handler_can_call_the_server_while_being_called(server, make_worker):
    caller, callee = make_worker(server, name="caller"), make_worker(server, name="callee")
    fid = unique("e2e::nested")
    s = unique("nested")

    def nested(data):
        # A sync handler runs on its own thread; it may call back into the server (§5.3).
        written = callee.trigger(
            {"function_id": "stream::set", "payload": {"stream_name": s, "group_id": "g", "item_id": data["id"], "data": data}}
        )
        return {"written": written, "listed": callee.trigger({"function_id": "stream::list", "payload": {"stream_name": s, "group_id": "g"}})}

    callee.register_function(fid, nested)
    round_trip(callee)
    assert call(caller, fid, {"id": "n1"}) == {
        "written": {"old_value": None, "new_value": {"id": "n1"}},
        "listed": [{"id": "n1"}],
    }


def test_a_live_owner_keeps_its_function_and_the_next_in_line_takes_over(server, make_worker):
    """docs/worker-protocol.md, Ownership: a second connection cannot take a live owner's
    function; it waits in line and serves once the owner is gone."""
    caller, first, second = (make_worker(server, name=n) for n in ("caller", "first", "second"))
    fid = unique("e2e::dup")
    first_only = unique("e2e::first-only")
    first.register_function(fid, lambda data: "first")
    first.register_function(first_only, lambda data: "first-only")
    round_trip(first)
    assert call(caller, fid) == "first"
    second.register_function(fid, lambda data: "second")
    round_trip(second)
    for _ in range(5):
        assert call(caller, fid) == "first"

    # The old owner's disconnect removes what it owns and hands the id to the next in line.
    shutdown_worker(first)

    def first_cleaned_up():
        try:
            call(caller, first_only, timeout_ms=2_000)
        except InvocationError as exc:
            return exc.code == "function_not_found"
        return False

    wait_for(first_cleaned_up, 5, message="the first worker's own function was not removed")
    assert call(caller, fid) == "second"


def test_pending_call_fails_with_invocation_stopped_when_callee_shuts_down(server, make_worker):
    caller, callee = make_worker(server, name="caller"), make_worker(server, name="callee")
    fid = unique("e2e::block")
    entered = threading.Event()
    release = threading.Event()

    def block(data):
        entered.set()
        release.wait(20)
        return "too late"

    callee.register_function(fid, block)
    round_trip(callee)
    try:
        bg = Background(call, caller, fid, {"x": 1}, timeout_ms=20_000)
        assert entered.wait(5), "the callee's handler was never invoked"
        started = time.monotonic()
        shutdown_worker(callee)
        bg.wait(10)
        assert isinstance(bg.error, InvocationError), (bg.result, bg.error)
        assert bg.error.code == "invocation_stopped", (bg.error.code, bg.error.message)
        assert time.monotonic() - started < 10
    finally:
        release.set()
    # The callee's functions are gone with its connection.
    wait_function_gone(caller, fid)
    server.assert_alive()


def wait_function_gone(caller, fid: str) -> None:
    """Poll until the server answers ``function_not_found`` for ``fid`` (its owner disconnected).
    Polled because the spec lists, but does not order against the caller's reply, the clean-up
    steps of worker-protocol.md §5.5."""

    def gone():
        try:
            call(caller, fid, {"probe": True}, timeout_ms=2_000)
        except InvocationError as exc:
            return exc.code == "function_not_found"
        return False

    wait_for(gone, 6, message=f"{fid} still routable after its worker disconnected")


def _read_lines(stream, out: "queue.Queue[str]") -> None:
    for raw in iter(stream.readline, b""):
        out.put(raw.decode("utf-8", "replace").rstrip("\n"))


def _wait_line(lines: "queue.Queue[str]", prefix: str, timeout: float, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None and lines.empty():
                break
            continue
        if line.startswith(prefix):
            return line
        seen.append(line)
    raise AssertionError(f"worker process never printed {prefix!r}; output: {seen!r}; exit={proc.poll()}")


def test_pending_call_fails_with_invocation_stopped_when_callee_process_is_killed(server, make_worker):
    caller = make_worker(server, name="caller")
    fid = unique("e2e::proc-hang")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "worker_proc.py"), "hang", server.engine_url, fid],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        _wait_line(lines, "READY", 30, proc)
        bg = Background(call, caller, fid, {"job": 7}, timeout_ms=20_000)
        entered = _wait_line(lines, "ENTERED ", 10, proc)
        assert json.loads(entered[len("ENTERED "):]) == {"job": 7}
        started = time.monotonic()
        proc.kill()
        proc.wait(5)
        bg.wait(10)
        assert isinstance(bg.error, InvocationError), (bg.result, bg.error)
        assert bg.error.code == "invocation_stopped", (bg.error.code, bg.error.message)
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    wait_function_gone(caller, fid)
    server.assert_alive()
