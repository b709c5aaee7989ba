"""Async batch pipeline for Azure OpenAI and OpenAI-compatible services."""

__version__ = "0.1.0"
