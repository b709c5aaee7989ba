"""Fixtures: an emulator on a free 127.0.0.1 port per test, and an aiohttp session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from pipeline.emulator import EmulatorConfig, EmulatorServer

StartEmulator = Callable[..., Awaitable[EmulatorServer]]


@pytest.fixture
async def emulator() -> AsyncIterator[StartEmulator]:
    """Call with EmulatorConfig fields to get a started server; all are stopped afterwards."""
    servers: list[EmulatorServer] = []

    async def start(**fields: Any) -> EmulatorServer:
        server = EmulatorServer(EmulatorConfig(**fields))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
