"""The operations the emulator answers, by route suffix ("chat/completions", ...)."""

from __future__ import annotations

from pipeline.emulator.exchange import Operation
from pipeline.emulator.ops.chat import CHAT
from pipeline.emulator.ops.completions import COMPLETIONS
from pipeline.emulator.ops.embeddings import EMBEDDINGS
from pipeline.emulator.ops.images import IMAGES
from pipeline.emulator.ops.responses import RESPONSES
from pipeline.emulator.ops.speech import SPEECH
from pipeline.emulator.ops.transcriptions import TRANSCRIPTIONS, TRANSLATIONS

OPERATIONS: dict[str, Operation] = {
    op.path: op for op in (EMBEDDINGS, CHAT, COMPLETIONS, RESPONSES, TRANSCRIPTIONS, TRANSLATIONS, SPEECH, IMAGES)
}

__all__ = ["OPERATIONS"]
