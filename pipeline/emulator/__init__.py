"""A local server that answers like Azure OpenAI, for tests, demos and benchmarks.

config.py   EmulatorConfig: quotas, latency, random faults, auth, content rules
quotas.py   sliding-window RPM/TPM (pure)         charges.py  tokens charged at arrival
faults.py   [[fault:KIND:N]] markers, random faults
content.py  deterministic vectors, text, JSON, PNG, audio, transcripts   schema_fill.py  JSON for a schema
reasoning.py  reasoning models' tokens            caching.py  prompt prefixes seen (cached_tokens)
inputs.py   a Responses body's input as chat messages
hearing.py  uploads decoded into speech regions   transcribers.py  per-model audio limits and formats
flow.py     one request: auth, body, deployment, validation, quota, filter, fault, answer
ops/        one module per operation (embeddings, chat, completions, responses, audio, images)
app.py      routes                                server.py   EmulatorServer, EmulatorThread
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.emulator.app import build_app
    from pipeline.emulator.charges import charge_tokens
    from pipeline.emulator.config import EmulatorConfig
    from pipeline.emulator.content import embedding_vector
    from pipeline.emulator.server import EmulatorServer, EmulatorThread
    from pipeline.emulator.state import EmulatorState

# The names below load on first use (PEP 562): the job spec reads EmulatorConfig's knobs from config.py,
# and a run against a real service should not load the server, its routes and numpy for that.
_HOMES = {
    "EmulatorConfig": "config",
    "EmulatorServer": "server",
    "EmulatorState": "state",
    "EmulatorThread": "server",
    "build_app": "app",
    "charge_tokens": "charges",
    "embedding_vector": "content",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "EmulatorThread",
    "build_app",
    "charge_tokens",
    "embedding_vector",
]
