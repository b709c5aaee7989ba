"""For provider = "emulator" without base_url: an emulator started in-process on a free port."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

from pipeline.spec import JobSpec, ServiceSpec


def needs_local_emulator(service: ServiceSpec) -> bool:
    return service.provider == "emulator" and not service.base_url


@contextlib.asynccontextmanager
async def local_emulator(spec: JobSpec) -> AsyncIterator[str | None]:
    """The local emulator's URL while the run lasts, or None when no deployment needs one."""
    if not any(needs_local_emulator(d.service) for d in spec.deployments()):
        yield None
        return
    # Imported here: a run against a real service never loads the emulator.
    from pipeline.emulator.config import EmulatorConfig
    from pipeline.emulator.server import EmulatorServer

    # The spec's [service.emulator] knobs are EmulatorConfig fields of the same names (spec.EmulatorOptions).
    server = EmulatorServer(EmulatorConfig(**dataclasses.asdict(spec.service.emulator)))
    url = await server.start("127.0.0.1", 0)
    try:
        yield url
    finally:
        await server.stop()
