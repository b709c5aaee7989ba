"""Running the emulator: in the current event loop, or in a thread for sync code."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from types import TracebackType
from typing import Any

from aiohttp import web

from pipeline.emulator.app import build_app
from pipeline.emulator.config import EmulatorConfig, apply_updates
from pipeline.emulator.state import EmulatorState

# A hanging request must not hold up shutdown for its full hang_s.
SHUTDOWN_TIMEOUT_S = 0.5


class EmulatorServer:
    """The emulator on a local TCP port, inside an already running event loop."""

    def __init__(self, config: EmulatorConfig | None = None, state: EmulatorState | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.state = state if state is not None else EmulatorState(seed=self.config.seed)
        self.app = build_app(self.config, self.state)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0: any free port) and return the base URL."""
        # handler_cancellation: a client that gives up on a hanging request frees its handler.
        runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def configure(self, **fields: Any) -> None:
        """Change config fields (validated as POST /_emulator/config does, plus token_verifier)."""
        if "token_verifier" in fields:
            self.config.token_verifier = fields.pop("token_verifier")
        apply_updates(self.config, fields)
        if "seed" in fields:
            self.state.faults.reset(self.config.seed)

    def reset(self) -> None:
        self.state.reset(self.config.seed)

    def stats(self) -> dict[str, Any]:
        return self.state.snapshot()

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class EmulatorThread:
    """An EmulatorServer in a daemon thread with its own loop: for sync tests and subprocess runs."""

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._server: EmulatorServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator", daemon=True)
        self.url = ""

    def start(self) -> str:
        self._thread.start()
        self.url = self._call(self._start())
        return self.url

    async def _start(self) -> str:
        self._server = EmulatorServer(self.config)
        return await self._server.start(self._host, self._port)

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._server.stop())
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @property
    def state(self) -> EmulatorState:
        assert self._server is not None, "EmulatorThread not started"
        return self._server.state

    def configure(self, **fields: Any) -> None:
        """Change config fields, applied on the server's loop between requests."""
        self._call(self._in_loop(lambda server: server.configure(**fields)))

    def stats(self) -> dict[str, Any]:
        return self._call(self._in_loop(lambda server: json.loads(json.dumps(server.stats()))))

    def reset(self) -> None:
        self._call(self._in_loop(lambda server: server.reset()))

    def get_json(self, path: str) -> Any:
        """GET an admin route over HTTP (what a subprocess client would see)."""
        with urllib.request.urlopen(self.url + path, timeout=10) as answer:
            return json.loads(answer.read())

    async def _in_loop(self, action: Any) -> Any:
        assert self._server is not None, "EmulatorThread not started"
        return action(self._server)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
