"""Command line: thin click wrappers over importable functions."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="aoai-pipeline")
def main() -> None:
    """Async batch pipeline for Azure OpenAI and OpenAI-compatible services."""


def _register_emulator() -> None:
    from pipeline.emulator.command import emulator_command

    main.add_command(emulator_command, name="emulator")


_register_emulator()
