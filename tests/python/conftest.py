"""pytest fixtures for the iii-stream end-to-end suite (Python clients).

Run from the repository root:  .venv/bin/python -m pytest tests/python
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

import harness  # sets OTEL_ENABLED=false before any iii import
from harness import ServerProcess, new_worker, shutdown_worker


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Attach the output of every running (or crashed) server to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        servers = list(harness.LIVE_SERVERS) + list(getattr(item, "_e2e_servers", []))
        seen = set()
        for server in servers:
            if id(server) in seen:
                continue
            seen.add(id(server))
            status = "running" if server.alive() else f"exited with code {server.exit_code()}"
            report.sections.append(
                (
                    f"iii-stream output [{server.label}, engine {server.engine_port}, "
                    f"stream {server.stream_port}, {status}]",
                    server.output(),
                )
            )


def _start(request: pytest.FixtureRequest, **kwargs: Any) -> ServerProcess:
    server = ServerProcess(**kwargs)
    try:
        server.start()
    except harness.ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    return server


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """One server shared by the tests of a module (default config, in-memory kv)."""
    srv = _start(request, label=f"shared:{request.module.__name__}")
    yield srv
    srv.stop()
    srv.cleanup_files()


@pytest.fixture
def server_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., ServerProcess]]:
    """Start a dedicated server with config overrides.

    ``server_factory(stream={...}, engine={...})`` deep-merges ``stream`` into the ``iii-stream``
    entry's config and ``engine`` into the ``iii-worker-manager`` entry's config.
    """
    started: list[ServerProcess] = []

    def factory(stream: dict[str, Any] | None = None, engine: dict[str, Any] | None = None) -> ServerProcess:
        srv = _start(request, stream=stream, engine=engine, label=f"dedicated:{request.node.name}")
        started.append(srv)
        request.node._e2e_servers = list(started)
        return srv

    yield factory
    for srv in started:
        srv.stop()
    for srv in started:
        srv.cleanup_files()


@pytest.fixture
def make_worker(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Create iii-sdk workers; each is shut down at teardown.

    ``make_worker(server_or_url, name=None, timeout_ms=10000)``. At teardown the test also fails
    if a server it used is no longer running (a crash during the test).
    """
    workers: list[Any] = []
    servers: list[ServerProcess] = []

    def factory(target: ServerProcess | str, name: str | None = None, timeout_ms: int = harness.DEFAULT_CALL_TIMEOUT_MS) -> Any:
        if isinstance(target, ServerProcess):
            target.assert_alive()  # fail fast instead of waiting 30 s for a dead server
            if target not in servers:
                servers.append(target)
            url = target.engine_url
        else:
            url = target
        worker = new_worker(url, name=name or f"e2e-{request.node.name}"[:100], timeout_ms=timeout_ms)
        workers.append(worker)
        return worker

    yield factory
    errors: list[BaseException] = []
    for worker in reversed(workers):
        try:
            shutdown_worker(worker)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
    for srv in servers:
        if not srv._stopped:
            srv.assert_alive()
    if errors:
        raise errors[0]


@pytest.fixture
def worker(server: ServerProcess, make_worker: Callable[..., Any]) -> Any:
    """A worker connected to the module's shared server."""
    return make_worker(server)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # The SDK runs a non-daemon event-loop thread per worker; make sure none keeps the process
    # alive after the session (e.g. after a failed shutdown).
    harness.force_stop_all_workers()
    for srv in list(harness.LIVE_SERVERS):
        srv.stop()
