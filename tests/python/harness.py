"""End-to-end harness for the iii-stream server, driven with the published Python clients.

Everything here is written from the specification in shared/spec (README.md, worker-protocol.md,
stream.md, clients.md), not from the server's implementation.

Contents:
- ``ServerProcess``: spawn ``iii-stream serve --config <file>`` on free ports with a generated
  YAML config, wait for ``GET /healthz`` == 200, capture its output, stop it.
- ``new_worker`` / ``shutdown_worker``: create and tear down ``iii-sdk`` workers.
- ``wait_for`` / ``assert_stays``: pollers with deadlines (no fixed sleeps for correctness).
- ``Recorder``: thread-safe record of handler invocations.
- ``RawEngineClient``: a raw WebSocket client for the engine port (exact-frame checks).
- ``load_motia_stream_client``: load only ``motia/stream_client.py`` (clients.md §1.6).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

# The SDKs read OTEL_ENABLED when a worker connects. Every worker of this suite runs with
# OpenTelemetry off, except the dedicated subprocess in test_otel.py (clients.md §1.2).
os.environ["OTEL_ENABLED"] = "false"

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

READY_TIMEOUT_S = 10.0
DEFAULT_CALL_TIMEOUT_MS = 10_000

# ---------------------------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------------------------


def unique(prefix: str = "t") -> str:
    """A fresh name, so that tests sharing one server never see each other's data."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def byte_sorted(names: Iterable[str]) -> list[str]:
    """Ascending byte order of the UTF-8 encoding (stream.md §3.8, §3.9)."""
    return sorted(names, key=lambda s: s.encode("utf-8"))


def wait_for(
    pred: Callable[[], Any],
    timeout: float = 5.0,
    interval: float = 0.02,
    message: str | Callable[[], str] | None = None,
) -> Any:
    """Poll ``pred`` until it returns a truthy value; return that value.

    Raises AssertionError after ``timeout`` seconds. Exceptions raised by ``pred`` propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(
                f"condition not met within {timeout:.1f}s" + (f": {text}" if text else "")
            )
        time.sleep(interval)


def assert_stays(
    pred: Callable[[], Any],
    duration: float = 0.3,
    interval: float = 0.02,
    message: str | Callable[[], str] | None = None,
) -> None:
    """Assert that ``pred`` stays truthy for ``duration`` seconds.

    Used only for negative checks ("this never fires") after a positive barrier has already
    been observed; it never decides a positive outcome.
    """
    deadline = time.monotonic() + duration
    while True:
        if not pred():
            text = message() if callable(message) else message
            raise AssertionError("condition stopped holding" + (f": {text}" if text else ""))
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


class Recorder:
    """Thread-safe list of calls recorded by worker handlers (which run on SDK threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Any] = []

    def add(self, item: Any) -> None:
        with self._lock:
            self._items.append(copy.deepcopy(item))

    @property
    def items(self) -> list[Any]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def wait_count(self, n: int, timeout: float = 5.0) -> list[Any]:
        wait_for(lambda: len(self) >= n, timeout, message=lambda: f"expected {n} calls, got {self.items!r}")
        return self.items


# ---------------------------------------------------------------------------------------------
# Config file (YAML). A minimal block-style emitter; strings are emitted JSON-quoted, which is a
# valid YAML double-quoted scalar (ensure_ascii keeps only \uXXXX, \", \\ and \n-style escapes).
# ---------------------------------------------------------------------------------------------


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"unsupported YAML scalar: {value!r}")


def to_yaml(value: Any, indent: int = 0) -> str:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        for key, item in value.items():
            k = json.dumps(str(key))
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{k}:\n{to_yaml(item, indent + 2)}")
            elif isinstance(item, dict):
                lines.append(f"{pad}{k}: {{}}\n")
            elif isinstance(item, list):
                lines.append(f"{pad}{k}: []\n")
            else:
                lines.append(f"{pad}{k}: {_yaml_scalar(item)}\n")
        return "".join(lines)
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        for item in value:
            if isinstance(item, (dict, list)) and item:
                body = to_yaml(item, indent + 2)
                # Put the first line of the nested block after "- ".
                first, _, rest = body.partition("\n")
                lines.append(f"{pad}- {first.lstrip()}\n{rest}")
            elif isinstance(item, dict):
                lines.append(f"{pad}- {{}}\n")
            elif isinstance(item, list):
                lines.append(f"{pad}- []\n")
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}\n")
        return "".join(lines)
    return pad + _yaml_scalar(value) + "\n"


def deep_merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Recursively merge ``overrides`` into a copy of ``base`` (override values win)."""
    result = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def free_ports(n: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all sockets held open until every port is chosen).

    Chosen below Linux's ephemeral range (32768-60999): ports from that range are also handed
    to outgoing connections as local ports, so a server could find its port taken by a client.
    """
    socks = []
    try:
        while len(socks) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", random.randrange(20000, 32000)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def build_config(
    engine_port: int,
    stream_port: int,
    stream: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The config of stream.md §9 with an in-memory kv adapter, plus test-specific overrides."""
    engine_cfg = deep_merge({"host": "127.0.0.1", "port": engine_port}, engine)
    stream_cfg = deep_merge(
        {
            "host": "127.0.0.1",
            "port": stream_port,
            "adapter": {"name": "kv", "config": {"store_method": "in_memory"}},
        },
        stream,
    )
    return {
        "workers": [
            {"name": "iii-worker-manager", "config": engine_cfg},
            {"name": "iii-stream", "config": stream_cfg},
        ]
    }


# ---------------------------------------------------------------------------------------------
# Server process
# ---------------------------------------------------------------------------------------------


def server_binary() -> Path:
    env = os.environ.get("III_STREAM_BIN")
    if env:
        return Path(env)
    return REPO_ROOT / "target" / "debug" / "iii-stream"


# Servers currently running in this test process; conftest attaches their output to failing
# test reports.
LIVE_SERVERS: list["ServerProcess"] = []


class ServerStartError(RuntimeError):
    pass


class ServerProcess:
    """One ``iii-stream serve`` process on free loopback ports."""

    def __init__(
        self,
        stream: dict[str, Any] | None = None,
        engine: dict[str, Any] | None = None,
        label: str = "server",
    ) -> None:
        self.label = label
        self.engine_port, self.stream_port = free_ports(2)
        self.config = build_config(self.engine_port, self.stream_port, stream, engine)
        self.workdir = Path(tempfile.mkdtemp(prefix="iii-stream-e2e-"))
        self.config_path = self.workdir / "config.yaml"
        self.log_path = self.workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._stopped = False

    # URLs ------------------------------------------------------------------------------------
    @property
    def engine_url(self) -> str:
        return f"ws://127.0.0.1:{self.engine_port}"

    @property
    def stream_ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.stream_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.stream_port}"

    # Lifecycle -------------------------------------------------------------------------------
    def start(self) -> "ServerProcess":
        binary = server_binary()
        if not binary.exists():
            raise ServerStartError(
                f"iii-stream binary not found at {binary} "
                "(build it with `cargo build -p iii-stream` or set III_STREAM_BIN)"
            )
        self.config_path.write_text(to_yaml(self.config), encoding="utf-8")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=str(self.workdir),
            env=env,
        )
        LIVE_SERVERS.append(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last_error = "no attempt"
        while time.monotonic() < deadline:
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"iii-stream exited with code {code} before becoming ready\n"
                    f"--- config ---\n{self.config_path.read_text()}\n--- output ---\n{self.output()}"
                )
            try:
                with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1.0) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = repr(exc)
            time.sleep(0.05)
        raise ServerStartError(
            f"iii-stream not ready within {READY_TIMEOUT_S}s (last /healthz attempt: {last_error})\n"
            f"--- config ---\n{self.config_path.read_text()}\n--- output ---\n{self.output()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def output(self, max_chars: int = 20_000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "<no output captured>"
        text = data.decode("utf-8", "replace")
        if len(text) > max_chars:
            text = "...<truncated>...\n" + text[-max_chars:]
        return text

    def assert_alive(self) -> None:
        if not self.alive():
            raise AssertionError(
                f"iii-stream ({self.label}) is no longer running (exit code {self.exit_code()})\n"
                f"--- output ---\n{self.output()}"
            )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)

    def cleanup_files(self) -> None:
        # E2E_SERVER_LOG_DIR=<dir> keeps every server's output (e.g. to inspect warnings of a green run).
        keep = os.environ.get("E2E_SERVER_LOG_DIR")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.label)
            shutil.copyfile(self.log_path, Path(keep) / f"{safe}-{self.stream_port}.log")
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# iii-sdk workers
# ---------------------------------------------------------------------------------------------

_ALL_WORKERS: list[Any] = []


def new_worker(url: str, name: str | None = None, timeout_ms: int = DEFAULT_CALL_TIMEOUT_MS) -> Any:
    """``register_worker(url, InitOptions(worker_name=...))`` (clients.md §1.2); blocks until open."""
    from iii import InitOptions, register_worker

    worker = register_worker(
        url,
        InitOptions(worker_name=name or unique("py-worker"), invocation_timeout_ms=timeout_ms),
    )
    _ALL_WORKERS.append(worker)
    return worker


def shutdown_worker(worker: Any, timeout: float = 15.0) -> None:
    """Idempotent, bounded ``worker.shutdown()``.

    ``shutdown()`` of an already shut-down worker would wait forever on its stopped loop, so the
    call is recorded on the object.
    """
    if getattr(worker, "_e2e_shut_down", False):
        return
    worker._e2e_shut_down = True
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.shutdown()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        force_stop_worker_loop(worker)
        raise AssertionError(f"worker.shutdown() did not finish within {timeout}s")
    if errors:
        raise errors[0]


def force_stop_worker_loop(worker: Any) -> None:
    """Stop a worker's (non-daemon) event-loop thread so the test process can exit."""
    loop = getattr(worker, "_loop", None)
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(loop.stop)


def force_stop_all_workers() -> None:
    for worker in _ALL_WORKERS:
        force_stop_worker_loop(worker)


def sdk_version() -> str:
    from importlib.metadata import version

    return version("iii-sdk")


def call(worker: Any, function_id: str, payload: Any = None, *, omit_payload: bool = False, **extra: Any) -> Any:
    """``worker.trigger({...})``; with ``omit_payload`` the request has no ``payload`` key."""
    request: dict[str, Any] = {"function_id": function_id}
    if not omit_payload:
        request["payload"] = payload
    request.update(extra)
    return worker.trigger(request)


def call_error(worker: Any, function_id: str, payload: Any = None, **kw: Any) -> Any:
    """Call and return the ``InvocationError`` raised; fail if the call succeeded."""
    from iii import InvocationError

    try:
        result = call(worker, function_id, payload, **kw)
    except InvocationError as exc:
        return exc
    raise AssertionError(f"{function_id} succeeded with {result!r}; an error was expected")


def round_trip(worker: Any) -> None:
    """One call on the worker's connection, so the server has processed every earlier message of
    that connection (registrations are unacknowledged; clients.md §3)."""
    call(worker, "stream::get", {"stream_name": "e2e-barrier", "group_id": "g", "item_id": "i"})


# ---------------------------------------------------------------------------------------------
# Raw engine-port client (exact frames)
# ---------------------------------------------------------------------------------------------


class RawEngineClient:
    """A plain WebSocket client on the engine port, for checks the SDK hides."""

    def __init__(self, url: str, path: str = "/") -> None:
        from contextlib import ExitStack

        from websockets.sync.client import connect

        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(url + path, open_timeout=5, max_size=None))

    def send(self, message: Any) -> None:
        self.ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))

    def recv_json(self, timeout: float = 5.0) -> Any:
        raw = self.ws.recv(timeout=timeout)
        assert isinstance(raw, str), f"server sent a non-text message: {raw!r}"
        return json.loads(raw)

    def recv_until(self, pred: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """Receive frames until one matches ``pred``; return it."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout}s; got {seen!r}")
            try:
                msg = self.recv_json(timeout=remaining)
            except TimeoutError:
                raise AssertionError(f"no matching frame within {timeout}s; got {seen!r}") from None
            if pred(msg):
                return msg
            seen.append(msg)

    def expect_silence(self, duration: float = 0.3) -> None:
        try:
            raw = self.ws.recv(timeout=duration)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message from the server: {raw!r}")

    def close(self) -> None:
        try:
            self._stack.close()
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------------------------------------
# Motia Python stream client (clients.md §1.6)
# ---------------------------------------------------------------------------------------------

_MOTIA_MODULE_NAME = "iii_e2e_motia_stream_client"


def load_motia_stream_client() -> Any:
    """Load only ``motia/stream_client.py`` from iii-motia==1.0.0rc5.

    ``import motia`` would execute the package ``__init__``, which imports an old SDK API and
    fails. ``find_spec`` locates the package without executing it; the file is loaded with
    ``spec_from_file_location`` and registered in ``sys.modules`` *before* execution (its
    dataclasses look their module up there).
    """
    if _MOTIA_MODULE_NAME in sys.modules:
        return sys.modules[_MOTIA_MODULE_NAME]
    pkg_spec = importlib.util.find_spec("motia")
    if pkg_spec is None or not pkg_spec.submodule_search_locations:
        raise ImportError("iii-motia is not installed (pip install --no-deps iii-motia==1.0.0rc5)")
    pkg_dir = Path(list(pkg_spec.submodule_search_locations)[0])
    path = pkg_dir / "stream_client.py"
    spec = importlib.util.spec_from_file_location(_MOTIA_MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MOTIA_MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(_MOTIA_MODULE_NAME, None)
        raise
    return module


def motia_available() -> bool:
    return importlib.util.find_spec("motia") is not None
