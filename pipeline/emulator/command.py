"""`pipeline emulator`: run the emulator in the foreground until SIGINT/SIGTERM.

Its options are EmulatorConfig's knobs (config.py), one per field in declaration order: a knob added
there is an option here, with its help and default.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pipeline.emulator.config import EmulatorConfig, knob_of, knobs, value_type
from pipeline.emulator.server import EmulatorServer

F = TypeVar("F", bound=Callable[..., Any])


def knob_option(config_field: dataclasses.Field[Any]) -> Callable[[F], F]:
    """The click option that sets one config field: --field-name (a set: repeatable; choices: a Choice)."""
    knob = knob_of(config_field)
    kind = value_type(config_field)
    flag = knob.flag or "--" + config_field.name.replace("_", "-")
    how: dict[str, Any] = {"type": kind, "default": config_field.default}
    if knob.choices:
        how["type"] = click.Choice([choice for choice in knob.choices if choice is not None])
    elif kind is set:
        how = {"type": str, "default": None, "multiple": True}
    return click.option(flag, config_field.name, show_default=knob.show_default, help=knob.help, **how)


def knob_options(command: F) -> F:
    """Every knob as an option, listed in --help in the config's order."""
    for config_field in reversed(knobs().values()):  # the decorator applied last is listed first
        command = knob_option(config_field)(command)
    return command


def config_from_options(values: dict[str, Any]) -> EmulatorConfig:
    """The options' values as a config; a repeatable option given no times leaves its set unset (None)."""
    fields = knobs()
    settings: dict[str, Any] = {name: set(value) or None if value_type(fields[name]) is set else value
                                for name, value in values.items()}
    return EmulatorConfig(**settings)


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="0 picks a free port.")
@knob_options
def emulator_command(host: str, port: int, **values: Any) -> None:
    """Run a local server that answers like Azure OpenAI (and OpenAI under /v1)."""
    asyncio.run(_serve(config_from_options(values), host, port))


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
