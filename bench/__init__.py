"""Benchmarks (GitHub issue 3): quota efficiency, client overhead, embeddings throughput, memory.

Each module has `NAME` and `run(quick, work) -> list[Figure]`; `python -m bench` runs them.
Benchmarks are not tests: they report figures against references from the same run and never
assert on timing.
"""

from __future__ import annotations

from types import ModuleType

from bench import embeddings, memory, overhead, quota

BENCHMARKS: dict[str, ModuleType] = {module.NAME: module for module in (quota, overhead, embeddings, memory)}
