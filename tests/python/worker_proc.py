"""A worker process used by the end-to-end tests (run with the venv's python; not a test module).

Modes:
  hang <engine_url> <function_id>
      Registers <function_id>, whose handler prints ``ENTERED <json payload>`` and then blocks
      forever. Prints ``READY`` once the server has processed the registration (after one
      round-trip call). The test kills this process while a call is pending.
  otel <engine_url> <stream_name>
      Runs with OpenTelemetry ON (the one place in the suite): registers a function and a
      ``stream`` trigger, writes, waits for the trigger, flushes telemetry over ``/otel`` and
      prints one JSON line ``RESULT {...}`` describing what happened, then shuts down.

Protocol with the test: line-oriented stdout, flushed after each line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def mode_hang(url: str, function_id: str) -> None:
    os.environ["OTEL_ENABLED"] = "false"
    from iii import InitOptions, register_worker

    worker = register_worker(url, InitOptions(worker_name="e2e-hang-proc", invocation_timeout_ms=10_000))
    forever = threading.Event()

    def handler(data):
        emit("ENTERED " + json.dumps(data))
        forever.wait()
        return {"unreachable": True}

    worker.register_function(function_id, handler)
    worker.trigger({"function_id": "stream::get", "payload": {"stream_name": "e2e-barrier", "group_id": "g", "item_id": "i"}})
    emit("READY")
    forever.wait()


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001
            self.messages.append(str(record.msg))


def mode_otel(url: str, stream_name: str) -> None:
    os.environ.pop("OTEL_ENABLED", None)  # on by default (clients.md §1.2)
    os.environ["III_URL"] = url
    capture = _Capture()
    exporter_log = logging.getLogger("iii.telemetry_exporters")
    exporter_log.setLevel(logging.DEBUG)
    exporter_log.addHandler(capture)

    from iii import InitOptions, register_worker

    worker = register_worker(
        url,
        InitOptions(
            worker_name="e2e-otel-proc",
            invocation_timeout_ms=10_000,
            otel={"enabled": True, "engine_ws_url": url, "spans_flush_interval_ms": 50},
        ),
    )
    result: dict = {"errors": []}
    seen: list = []
    seen_lock = threading.Lock()

    def handler(data):
        with seen_lock:
            seen.append(data)
        return {"ok": True}

    try:
        worker.register_function("e2e::otel-handler", handler)
        worker.register_trigger({"type": "stream", "function_id": "e2e::otel-handler", "config": {"stream_name": stream_name}})
        worker.trigger({"function_id": "stream::get", "payload": {"stream_name": stream_name, "group_id": "g", "item_id": "x"}})
        result["set"] = worker.trigger(
            {"function_id": "stream::set", "payload": {"stream_name": stream_name, "group_id": "g", "item_id": "x", "data": {"v": 1}}}
        )
        result["get"] = worker.trigger({"function_id": "stream::get", "payload": {"stream_name": stream_name, "group_id": "g", "item_id": "x"}})
        result["list_all_has_stream"] = any(
            e["id"] == stream_name for e in worker.trigger({"function_id": "stream::list_all"})["stream"]
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with seen_lock:
                if seen:
                    break
            time.sleep(0.02)
        with seen_lock:
            result["trigger_ids"] = [d.get("id") for d in seen]

        # Push the spans produced above through the /otel socket, then keep using it for a while:
        # a server that rejects or closes /otel makes the exporter log "OTel WS disconnected".
        from opentelemetry import trace

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("OTel WS connected" in m for m in capture.messages):
            time.sleep(0.02)
        for _ in range(3):
            provider = trace.get_tracer_provider()
            if hasattr(provider, "force_flush"):
                provider.force_flush(2000)
            worker.trigger({"function_id": "stream::get", "payload": {"stream_name": stream_name, "group_id": "g", "item_id": "x"}})
            time.sleep(0.2)
        if hasattr(trace.get_tracer_provider(), "force_flush"):
            trace.get_tracer_provider().force_flush(2000)
        time.sleep(0.3)
        result["otel_connected"] = sum("OTel WS connected" in m for m in capture.messages)
        result["otel_disconnected"] = [m for m in capture.messages if "OTel WS disconnected" in m]
        result["connection_state"] = worker.get_connection_state()
    except Exception as exc:  # noqa: BLE001
        result["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        emit("RESULT " + json.dumps(result))
        worker.shutdown()


def main() -> None:
    mode = sys.argv[1]
    if mode == "hang":
        mode_hang(sys.argv[2], sys.argv[3])
    elif mode == "otel":
        mode_otel(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
