"""`pipeline emulator`: run the emulator in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import click

from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import EmulatorServer


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="0 picks a free port.")
@click.option("--rpm", type=int, help="Requests per minute per deployment.")
@click.option("--tpm", type=int, help="Tokens per minute per deployment.")
@click.option("--window-s", default=1.0, show_default=True, type=float, help="Quota window (Azure: 1 or 10).")
@click.option("--latency-ms", default=0.0, type=float)
@click.option("--latency-per-token-ms", default=0.0, type=float)
@click.option("--error-rate", default=0.0, type=float, help="Share of random 500/503 answers.")
@click.option("--drop-rate", default=0.0, type=float, help="Share of connections closed unanswered.")
@click.option("--hang-rate", default=0.0, type=float, help="Share of answers delayed by --hang-s.")
@click.option("--hang-s", default=30.0, type=float)
@click.option("--truncate-rate", default=0.0, type=float, help="Share of bodies cut in half.")
@click.option("--burst429-rate", default=0.0, type=float, help="Share of spurious 429s.")
@click.option("--compute-ms-per-input", default=0.0, type=float,
              help="Compute-bound: one request at a time, this long per embeddings input.")
@click.option("--seed", default=0, type=int)
@click.option("--api-key", default=None, help="Require this key (any non-empty key if unset).")
@click.option("--deployment", "deployments", multiple=True, help="Known deployment (repeatable; any if unset).")
@click.option("--content-filter-word", default="BLOCKME", show_default=True)
@click.option("--token-count-factor", default=1.0, show_default=True, type=float,
              help="Charge this many times the shared token estimate (a service counting otherwise).")
@click.option("--window-kind", default="sliding", show_default=True, type=click.Choice(["sliding", "fixed"]),
              help="fixed: clock-aligned windows of --window-s, counted from zero in each (a gateway's minute).")
@click.option("--gateway", default=None, type=click.Choice(["litellm"]),
              help="Refuse as this gateway does (its own 429 and request id headers).")
@click.option("--over-limit", default="429", show_default=True, type=click.Choice(["429", "hold"]),
              help="hold: keep an over-limit request until its window has room, then answer it.")
def emulator_command(host: str, port: int, deployments: tuple[str, ...], **fields: object) -> None:
    """Run a local server that answers like Azure OpenAI (and OpenAI under /v1)."""
    config = EmulatorConfig(deployments=set(deployments) or None)
    for name, value in fields.items():
        setattr(config, name, value)
    asyncio.run(_serve(config, host, port))


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    server = EmulatorServer(config)
    url = await server.start(host, port)
    click.echo(url)  # the URL alone, easy to parse; the key, if any, is never printed
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
