"""Benchmarks: quota efficiency, client overhead, embeddings throughput, memory (issue 3); audio and
image files (issue 4); several deployments and batch mode (issue 8);
the redo a kill -9 costs (issue 12); a self-hosted server's capacity and slow input I/O (issue 13);
recordings of any length, cut into chunks (longaudio).

Each module has `NAME` and `run(quick, work) -> list[Figure]`; `python -m bench` runs them.
Benchmarks are not tests: they report figures against references from the same run and never
assert on timing.
"""

from __future__ import annotations

from types import ModuleType

from bench import (
    batch,
    deployments,
    embeddings,
    gateway,
    longaudio,
    media,
    memory,
    overhead,
    quota,
    ratio,
    redo,
    selfhosted,
    slowio,
)

BENCHMARKS: dict[str, ModuleType] = {
    module.NAME: module for module in (quota, overhead, embeddings, memory, media, deployments, batch, redo,
                                        ratio, selfhosted, gateway, slowio, longaudio)
}
