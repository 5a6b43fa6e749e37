"""OpenTelemetry stays ON here (the only place in the suite): the SDK opens ``<engine>/otel`` and
sends binary ``OTLP``/``MTRC``/``LOGS`` messages that the server must accept and discard without
ever answering or closing (worker-protocol.md §2, §11; clients.md §1.2).
"""

from __future__ import annotations

import json
import subprocess
import sys

from harness import HERE, unique


def test_worker_with_opentelemetry_enabled(server):
    s = unique("otel")
    proc = subprocess.run(
        [sys.executable, str(HERE / "worker_proc.py"), "otel", server.engine_url, s],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=90,
    )
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no RESULT line (exit {proc.returncode})\nstdout:\n{out}\nstderr:\n{err[-5000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    context = f"result={result!r}\nstderr:\n{err[-5000:]}"
    assert result["errors"] == [], context
    assert result["set"] == {"old_value": None, "new_value": {"v": 1}}, context
    assert result["get"] == {"v": 1}, context
    assert result["list_all_has_stream"] is True, context
    assert result["trigger_ids"] == ["x"], context
    assert result["otel_connected"] >= 1, context
    assert result["otel_disconnected"] == [], context
    assert result["connection_state"] == "connected", context
    server.assert_alive()


def test_raw_otel_socket_discards_everything_and_answers_pings(server):
    from websockets.sync.client import connect

    with connect(server.engine_url + "/otel", open_timeout=5) as ws:
        ws.send(b"OTLP" + json.dumps({"resourceSpans": []}).encode())
        ws.send(b"MTRC" + json.dumps({"resourceMetrics": []}).encode())
        ws.send(b"LOGS" + json.dumps({"resourceLogs": []}).encode())
        ws.send("not even json")
        ws.send(json.dumps({"type": "invokefunction", "invocation_id": "x", "function_id": "stream::list_all"}))
        pong = ws.ping(b"e2e")
        assert pong.wait(5), "no pong on /otel"
        try:
            message = ws.recv(timeout=0.5)
        except TimeoutError:
            message = None
        assert message is None, f"the server sent something on /otel: {message!r}"
    server.assert_alive()
