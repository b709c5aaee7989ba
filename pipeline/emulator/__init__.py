"""A local server that answers like Azure OpenAI, for tests, demos and benchmarks.

config.py   EmulatorConfig: quotas, latency, random faults, auth, content rules
quotas.py   sliding-window RPM/TPM (pure)         charges.py  tokens charged at arrival
faults.py   [[fault:KIND:N]] markers, random faults
content.py  deterministic vectors, text, JSON, PNG, audio, transcripts
flow.py     one request: auth, body, deployment, validation, quota, filter, fault, answer
ops/        one module per operation (embeddings, chat, completions, audio, images)
app.py      routes                                server.py   EmulatorServer, EmulatorThread
"""

from __future__ import annotations

from pipeline.emulator.app import build_app
from pipeline.emulator.charges import charge_tokens
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.content import embedding_vector
from pipeline.emulator.server import EmulatorServer, EmulatorThread
from pipeline.emulator.state import EmulatorState

__all__ = [
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "EmulatorThread",
    "build_app",
    "charge_tokens",
    "embedding_vector",
]
