"""The clients compared: ours (run_job), the official openai SDK, and a bare aiohttp loop as a floor.

Each runs in this process against an emulator in another one; callers wrap them in `measure()`.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from openai import AsyncAzureOpenAI

from pipeline.runner import RunOptions, RunResult, run_job
from pipeline.spec import load_spec

API_VERSION = "2024-10-21"


def run_ours(spec: Path) -> RunResult:
    return run_job(load_spec(spec), RunOptions())


def _sdk(url: str) -> AsyncAzureOpenAI:
    return AsyncAzureOpenAI(azure_endpoint=url, api_key="k", api_version=API_VERSION)


async def _bounded(concurrency: int, jobs: list[Any], call: Any) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> None:
        async with gate:
            await call(job)

    await asyncio.gather(*(one(job) for job in jobs))


def openai_chat(url: str, deployment: str, prompts: list[str], concurrency: int, max_tokens: int) -> list[Any]:
    """`chat.completions.create` per prompt, Semaphore(concurrency); answers collected in a list."""
    results: list[Any] = []

    async def main() -> None:
        client = _sdk(url)

        async def call(prompt: str) -> None:
            answer = await client.chat.completions.create(
                model=deployment, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens)
            results.append(answer.choices[0].message.content)

        await _bounded(concurrency, prompts, call)
        await client.close()

    asyncio.run(main())
    return results


def _chat_url(url: str, deployment: str, op: str) -> str:
    return f"{url}/openai/deployments/{deployment}/{op}?api-version={API_VERSION}"


def bare_chat(url: str, deployment: str, prompts: list[str], concurrency: int, max_tokens: int) -> list[Any]:
    """One aiohttp session, a semaphore, POST + JSON parse: about the least a client can do."""
    results: list[Any] = []
    endpoint = _chat_url(url, deployment, "chat/completions")

    async def main() -> None:
        async with aiohttp.ClientSession(headers={"api-key": "k"}) as session:

            async def call(prompt: str) -> None:
                body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
                async with session.post(endpoint, json=body) as answer:
                    answer.raise_for_status()
                    data = await answer.json()
                results.append(data["choices"][0]["message"]["content"])

            await _bounded(concurrency, prompts, call)

    asyncio.run(main())
    return results


def _decode(value: Any) -> np.ndarray:
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f4")
    return np.asarray(value, dtype=np.float32)


def openai_embeddings(url: str, deployment: str, batches: list[list[str]], concurrency: int,
                      dimensions: int) -> list[np.ndarray]:
    """`embeddings.create(encoding_format="base64")` per batch, decoded with numpy, kept in a list."""
    vectors: list[np.ndarray] = []

    async def main() -> None:
        client = _sdk(url)

        async def call(batch: list[str]) -> None:
            answer = await client.embeddings.create(model=deployment, input=batch, dimensions=dimensions,
                                                    encoding_format="base64")
            vectors.extend(_decode(item.embedding) for item in answer.data)

        await _bounded(concurrency, batches, call)
        await client.close()

    asyncio.run(main())
    return vectors


def bare_embeddings(url: str, deployment: str, batches: list[list[str]], concurrency: int,
                    dimensions: int) -> list[np.ndarray]:
    """aiohttp POST + JSON parse + numpy decode: close to what the emulator can serve."""
    vectors: list[np.ndarray] = []
    endpoint = _chat_url(url, deployment, "embeddings")

    async def main() -> None:
        async with aiohttp.ClientSession(headers={"api-key": "k"}) as session:

            async def call(batch: list[str]) -> None:
                body = {"input": batch, "dimensions": dimensions, "encoding_format": "base64"}
                async with session.post(endpoint, json=body) as answer:
                    answer.raise_for_status()
                    data = await answer.json()
                vectors.extend(_decode(item["embedding"]) for item in data["data"])

            await _bounded(concurrency, batches, call)

    asyncio.run(main())
    return vectors
