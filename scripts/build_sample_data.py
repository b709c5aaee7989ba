#!/usr/bin/env python3
"""Rebuild the sample material in ``sample_data/`` deterministically.

Usage::

    python scripts/build_sample_data.py                 # everything
    python scripts/build_sample_data.py --only corpus   # one part (repeatable)

Parts:

* ``corpus``      - passages from the Python standard library's docstrings
                    (``corpus.jsonl``, ``corpus.parquet``, ``corpus_small.jsonl``)
* ``chat``        - ``chat_prompts.jsonl`` and ``chat_messages.jsonl`` (from the corpus)
* ``completions`` - ``completions_prompts.jsonl`` (from the corpus)
* ``images``      - ``image_prompts.jsonl`` (hand-written prompts below)
* ``speech``      - ``speech_texts.jsonl`` (hand-written sentences below)
* ``audio``       - ``audio/`` recordings made with espeak-ng and sox; skipped with a
                    message when those tools are missing (the committed files stay)

The corpus depends on the interpreter's standard library, so rebuild it with
Python 3.11 to reproduce the committed files byte for byte.  The other parts that
are derived from the corpus read ``sample_data/corpus.jsonl``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import io
import json
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "sample_data"
AUDIO_DIR = SAMPLE_DIR / "audio"

EXPECTED_PYTHON = (3, 11)
CORPUS_SOURCE = f"python-stdlib-{sys.version_info.major}.{sys.version_info.minor}"
CORPUS_TARGET_ROWS = 3000
SMALL_CORPUS_ROWS = 200
MIN_DOC_CHARS = 80
MAX_PASSAGE_CHARS = 1500

CHAT_PROMPT_ROWS = 200
CHAT_MESSAGE_ROWS = 50
COMPLETION_ROWS = 100

# Top-level modules never imported: GUI toolkits, demos, tests, modules with
# side effects on import (printing, opening a browser, touching the terminal),
# Windows-only modules, and deprecated aliases / packaging helpers.
SKIP_TOP_LEVEL = frozenset(
    {
        "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test",
        "lib2to3", "distutils", "ensurepip", "venv", "pydoc_data", "readline",
        "msilib", "msvcrt", "nt", "winreg", "winsound", "sre_compile",
        "sre_constants", "sre_parse", "encodings", "site",
    }
)  # fmt: skip
# Submodule name parts that mark test suites or scripts.
SKIP_PARTS = frozenset({"test", "tests", "idle_test", "__main__"})


# --------------------------------------------------------------------------- io


def shown(path: Path) -> str:
    """``path`` relative to the repository root when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` as UTF-8 JSON lines; return the number of rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    print(f"wrote {shown(path)} ({count} rows)")
    return count


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON lines file into a list of dicts."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_parquet(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    """Write ``rows`` (all string columns) to a zstd-compressed Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.string()) for name in columns])
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, path, compression="zstd")
    print(f"wrote {shown(path)} ({table.num_rows} rows)")


def stable_rank(salt: str, key: str) -> str:
    """A deterministic pseudo-random sort key (independent of PYTHONHASHSEED)."""
    return hashlib.sha1(f"{salt}:{key}".encode()).hexdigest()


# ----------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class DocEntry:
    """One documented object: its qualified name and cleaned docstring."""

    title: str
    doc: str


def is_public_module(name: str) -> bool:
    """True for module names with no private, test or script component."""
    parts = name.split(".")
    if parts[0] in SKIP_TOP_LEVEL:
        return False
    return not any(part.startswith("_") or part in SKIP_PARTS for part in parts)


def import_quietly(name: str) -> types.ModuleType | None:
    """Import ``name``; return None if it fails or writes anything while importing."""
    sink = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                module = importlib.import_module(name)
        except Exception:  # platform-specific modules fail to import
            return None
    return None if sink.getvalue() else module


def iter_stdlib_modules() -> Iterator[types.ModuleType]:
    """Yield public standard-library modules and their public submodules, by name."""
    for name in sorted(sys.stdlib_module_names):
        if is_public_module(name):
            yield from _walk_module(name)


def _walk_module(name: str) -> Iterator[types.ModuleType]:
    """Yield the module ``name`` and, if it is a package, its public submodules."""
    module = import_quietly(name)
    if module is None:
        return
    yield module
    path = getattr(module, "__path__", None)
    if path is None:
        return
    for info in sorted(pkgutil.iter_modules(path), key=lambda item: item.name):
        child = f"{name}.{info.name}"
        if is_public_module(child):
            yield from _walk_module(child)


def clean_doc(obj: Any) -> str | None:
    """The object's own docstring, dedented and stripped (None if absent)."""
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str):
        return None
    return inspect.cleandoc(doc).strip() or None


def _is_member_routine(raw: Any) -> bool:
    """True for functions, methods, static/class methods and properties of a class."""
    if inspect.isclass(raw):
        return False
    return isinstance(raw, staticmethod | classmethod | property) or callable(raw)


def iter_class_members(cls: type, prefix: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(qualified name, object)`` for a class's own public routines."""
    for attr in sorted(vars(cls)):
        raw = vars(cls)[attr]
        if not attr.startswith("_") and _is_member_routine(raw):
            yield f"{prefix}.{attr}", raw


def iter_module_objects(module: types.ModuleType) -> Iterator[tuple[str, Any]]:
    """Yield ``(qualified name, object)`` for a module, its classes and functions."""
    modname = module.__name__
    yield modname, module
    for attr in sorted(dir(module)):
        if attr.startswith("_"):
            continue
        obj = getattr(module, attr, None)
        if getattr(obj, "__module__", None) != modname:
            continue  # re-exported from elsewhere: documented where it is defined
        if inspect.isclass(obj):
            yield f"{modname}.{attr}", obj
            yield from iter_class_members(obj, f"{modname}.{attr}")
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield f"{modname}.{attr}", obj


def collect_doc_entries() -> list[DocEntry]:
    """All documented stdlib objects with docstrings of at least MIN_DOC_CHARS."""
    entries: dict[str, DocEntry] = {}
    seen: set[int] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated aliases warn when touched
        for module in iter_stdlib_modules():
            for title, obj in iter_module_objects(module):
                doc = clean_doc(obj)
                if doc is None or len(doc) < MIN_DOC_CHARS or id(obj) in seen:
                    continue
                seen.add(id(obj))
                entries.setdefault(title, DocEntry(title, doc))
    return sorted(entries.values(), key=lambda entry: entry.title)


def _hard_wrap(text: str, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` chars, at whitespace if possible."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*pieces, text] if text else pieces


def _pack(units: list[str], joiner: str, limit: int) -> list[str]:
    """Greedily join consecutive ``units`` into chunks of at most ``limit`` chars."""
    chunks: list[str] = []
    for unit in units:
        if chunks and len(chunks[-1]) + len(joiner) + len(unit) <= limit:
            chunks[-1] = chunks[-1] + joiner + unit
        else:
            chunks.append(unit)
    return chunks


def _split_paragraph(paragraph: str, limit: int) -> list[str]:
    """Split one over-long paragraph at line boundaries, hard-wrapping long lines."""
    lines: list[str] = []
    for line in paragraph.splitlines():
        lines.extend(_hard_wrap(line, limit) if len(line) > limit else [line])
    return _pack(lines, "\n", limit)


def split_passages(doc: str, limit: int = MAX_PASSAGE_CHARS) -> list[str]:
    """Split a docstring into passages of at most ~``limit`` chars at paragraph breaks.

    A short trailing piece (under MIN_DOC_CHARS) is merged into the previous passage.
    """
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n", doc):
        paragraph = paragraph.strip("\n")
        if paragraph.strip():
            units.extend(_split_paragraph(paragraph, limit) if len(paragraph) > limit else [paragraph])
    passages = _pack(units, "\n\n", limit)
    if len(passages) > 1 and len(passages[-1]) < MIN_DOC_CHARS:
        tail = passages.pop()
        passages[-1] = passages[-1] + "\n\n" + tail
    return passages


def entry_rows(entry: DocEntry) -> list[dict[str, str]]:
    """Corpus rows (one per passage) for a documented object."""
    return [
        {"id": f"{entry.title}#{index}", "title": entry.title, "source": CORPUS_SOURCE, "text": text}
        for index, text in enumerate(split_passages(entry.doc))
    ]


def select_entries(entries: list[DocEntry], target_rows: int) -> list[DocEntry]:
    """Every module docstring, then other objects in a stable shuffled order, until
    the passages add up to about ``target_rows``."""
    modules = {module.__name__ for module in iter_stdlib_modules()}
    first = [entry for entry in entries if entry.title in modules]
    rest = sorted(
        (entry for entry in entries if entry.title not in modules),
        key=lambda entry: stable_rank("corpus", entry.title),
    )
    chosen: list[DocEntry] = []
    total = 0
    for entry in first + rest:
        if total >= target_rows:
            break
        chosen.append(entry)
        total += len(split_passages(entry.doc))
    return chosen


def build_corpus_rows(target_rows: int = CORPUS_TARGET_ROWS) -> list[dict[str, str]]:
    """The corpus rows, sorted by title then passage number."""
    entries = select_entries(collect_doc_entries(), target_rows)
    rows = [row for entry in sorted(entries, key=lambda e: e.title) for row in entry_rows(entry)]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "corpus ids must be unique"
    return rows


def build_corpus() -> None:
    """Write corpus.jsonl, corpus.parquet and corpus_small.jsonl."""
    if sys.version_info[:2] != EXPECTED_PYTHON:
        print(
            f"warning: building the corpus with Python {sys.version.split()[0]}; "
            "the committed corpus was built with 3.11, so the text will differ",
            file=sys.stderr,
        )
    rows = build_corpus_rows()
    write_jsonl(SAMPLE_DIR / "corpus.jsonl", rows)
    write_parquet(SAMPLE_DIR / "corpus.parquet", rows, ["id", "title", "source", "text"])
    write_jsonl(SAMPLE_DIR / "corpus_small.jsonl", rows[:SMALL_CORPUS_ROWS])


def load_corpus() -> list[dict[str, str]]:
    """The committed corpus (built first if it is missing)."""
    path = SAMPLE_DIR / "corpus.jsonl"
    if not path.exists():
        build_corpus()
    return read_jsonl(path)


# ------------------------------------------------------------ chat/completions


def first_sentence(text: str) -> str:
    """The docstring's first sentence (or first line if there is no full stop)."""
    summary = text.split("\n\n", 1)[0].replace("\n", " ").strip()
    match = re.match(r"(.+?[.!?])(\s|$)", summary)
    return (match.group(1) if match else summary).strip()


def is_module_title(title: str) -> bool:
    """True if ``title`` names a module (rather than a class or function)."""
    try:
        return importlib.util.find_spec(title) is not None
    except (ImportError, ValueError):
        return False


def pick_passages(corpus: list[dict[str, str]], salt: str, count: int) -> list[dict[str, str]]:
    """``count`` first passages of objects (not modules), of medium length, in a
    stable shuffled order."""
    candidates = [
        row
        for row in corpus
        if row["id"].endswith("#0") and 200 <= len(row["text"]) <= 1200 and not is_module_title(row["title"])
    ]
    candidates.sort(key=lambda row: stable_rank(salt, row["id"]))
    return candidates[:count]


CHAT_TASKS: list[tuple[str, str]] = [
    ("explain", "Explain in one sentence what `{title}` does."),
    ("summarize", "Summarize what `{title}` is for in at most three bullet points."),
    ("example", "Write a short, runnable Python example that uses `{title}`."),
    ("pitfalls", "What is a common mistake when using `{title}`, and how do you avoid it?"),
    ("arguments", "List the arguments `{title}` accepts and say what each one means."),
    ("when", "When should I use `{title}` rather than writing the logic myself? Two sentences."),
    ("beginner", "Explain `{title}` to someone new to Python, using an everyday analogy."),
    ("french", "Explique en une phrase, en français, à quoi sert `{title}` en Python."),
]

SYSTEM_PROMPTS = [
    "You are a concise Python expert. Answer in plain English, in at most three sentences.",
    "You are a helpful assistant for Python developers. Use short code examples when useful.",
    "You are a technical writer. Answer using only the documentation the user provides.",
]


def build_chat_prompts(corpus: list[dict[str, str]]) -> list[dict[str, str]]:
    """Chat tasks: a self-contained ``question`` plus the ``passage`` it is about."""
    rows = []
    for index, row in enumerate(pick_passages(corpus, "chat", CHAT_PROMPT_ROWS)):
        task, template = CHAT_TASKS[index % len(CHAT_TASKS)]
        rows.append(
            {
                "id": f"q{index + 1:04d}",
                "title": row["title"],
                "task": task,
                "question": template.format(title=row["title"]),
                "passage": row["text"],
            }
        )
    return rows


def _chat_conversation(index: int, row: dict[str, str]) -> list[dict[str, str]]:
    """A short conversation about one documented object (varies with ``index``)."""
    title = row["title"]
    messages: list[dict[str, str]] = []
    if index % 5 != 4:  # most, not all, conversations carry a system message
        messages.append({"role": "system", "content": SYSTEM_PROMPTS[index % len(SYSTEM_PROMPTS)]})
    if index % 3 == 0:
        user = f"Here is the documentation of `{title}`:\n\n{row['text']}\n\nWhat does it do?"
    else:
        user = f"What does `{title}` do in Python?"
    messages.append({"role": "user", "content": user})
    if index % 2 == 1:  # multi-turn: a prior answer and a follow-up question
        messages.append({"role": "assistant", "content": first_sentence(row["text"])})
        messages.append({"role": "user", "content": "Can you show a short example of using it?"})
    return messages


def build_chat_messages(corpus: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Rows with a ready-made ``messages`` list for the chat messages mode."""
    picked = pick_passages(corpus, "messages", CHAT_MESSAGE_ROWS)
    return [
        {"id": f"m{index + 1:03d}", "title": row["title"], "messages": _chat_conversation(index, row)}
        for index, row in enumerate(picked)
    ]


def signature_stub(title: str) -> str:
    """A ``def``/``class`` header for the last component of a qualified name."""
    name = title.rsplit(".", 1)[-1]
    return f"class {name}:" if name[:1].isupper() else f"def {name}(...):"


def completion_prompt(index: int, row: dict[str, str]) -> str:
    """One of five completion prompt styles (chosen by ``index``) about ``row``."""
    title, summary = row["title"], first_sentence(row["text"])
    styles = [
        f"Complete the docstring for `{title}`: ",
        f'{signature_stub(title)}\n    """{summary}\n\n    ',
        f"Q: What does `{title}` do in Python?\nA:",
        f"# Example: using {title}\n# {summary}\n",
        f"In the Python standard library, `{title}` is used to",
    ]
    return styles[index % len(styles)]


def build_completion_prompts(corpus: list[dict[str, str]]) -> list[dict[str, str]]:
    """Plain-text completion prompts derived from the corpus."""
    picked = pick_passages(corpus, "completions", COMPLETION_ROWS)
    return [
        {
            "id": f"c{index + 1:03d}",
            "title": row["title"],
            "prompt": completion_prompt(index, row),
        }
        for index, row in enumerate(picked)
    ]


def build_chat() -> None:
    """Write chat_prompts.jsonl and chat_messages.jsonl."""
    corpus = load_corpus()
    write_jsonl(SAMPLE_DIR / "chat_prompts.jsonl", build_chat_prompts(corpus))
    write_jsonl(SAMPLE_DIR / "chat_messages.jsonl", build_chat_messages(corpus))


def build_completions() -> None:
    """Write completions_prompts.jsonl."""
    write_jsonl(SAMPLE_DIR / "completions_prompts.jsonl", build_completion_prompts(load_corpus()))


# ---------------------------------------------------------------------- images

IMAGE_PROMPTS = [
    "A studio product photo of a matte black stainless-steel water bottle on a light grey "
    "seamless background, soft box lighting from the left, subtle reflection below.",
    "A clean isometric diagram of a three-tier web application: load balancer, two app "
    "servers and a replicated database, flat pastel colours, labelled boxes and arrows.",
    "A wide landscape photograph of a Norwegian fjord at sunrise, mist on the water, steep "
    "green cliffs and a small red boat in the foreground.",
    "A top-down flat-lay of a home office desk: laptop, notebook with handwritten notes, a "
    "cup of black coffee and a succulent, natural window light.",
    "A watercolour illustration of a busy farmers' market in autumn, stalls of pumpkins and "
    "apples, people in scarves, warm orange and brown palette.",
    "A product shot of wireless over-ear headphones in sand beige, floating at a slight "
    "angle against a gradient from peach to cream, high detail.",
    "A flowchart showing how a support ticket moves from 'new' to 'triaged', 'in progress', "
    "'waiting on customer' and 'closed', minimal black and white style.",
    "An aerial photo of terraced rice fields in Bali after rain, layered curves of bright "
    "green, a few palm trees and a narrow footpath.",
    "A cross-section illustration of a volcano showing the magma chamber, main vent, side "
    "vents and ash cloud, textbook style with labels.",
    "A minimalist poster of a lighthouse on a rocky coast at night, beam of light sweeping "
    "over dark blue waves, vector art.",
    "A close-up macro photograph of morning dew on a spider web, shallow depth of field, soft golden backlight.",
    "A cosy Scandinavian living room with a grey linen sofa, oak floor, wool throw, a floor "
    "lamp and large windows showing snow outside.",
    "A bar chart infographic comparing the average monthly rainfall of London, Paris and "
    "Madrid, clean sans-serif labels, muted blue, red and yellow bars.",
    "A product photo of a handmade ceramic coffee mug with a speckled white glaze on a "
    "walnut table, steam rising, shallow depth of field.",
    "A night-time street scene in Tokyo in the rain, neon signs reflected on wet asphalt, "
    "people with transparent umbrellas, cinematic lighting.",
    "An exploded-view technical drawing of a mechanical wristwatch movement: gears, "
    "mainspring, balance wheel, blueprint style on dark blue.",
    "A sunlit alpine meadow full of wildflowers with snow-capped peaks behind, a wooden "
    "hut on the left, summer afternoon.",
    "A friendly cartoon mascot of a robot holding a clipboard, rounded shapes, teal and "
    "white colour scheme, plain white background.",
    "A sequence diagram of an OAuth 2.0 authorization code flow between browser, client "
    "app, authorization server and resource server.",
    "A still life of a rustic sourdough loaf, a knife and a small bowl of olive oil on a "
    "linen cloth, dark moody lighting.",
    "A desert landscape in Namibia at golden hour, red dunes with sharp ridges, a single acacia tree and long shadows.",
    "An e-commerce photo of white leather sneakers, side view, on a pure white background with a soft contact shadow.",
    "A labelled diagram of the human heart showing the four chambers, valves, aorta and "
    "pulmonary arteries, medical illustration style.",
    "A cosy bookshop interior with floor-to-ceiling wooden shelves, a rolling ladder, warm "
    "lamps and a cat sleeping on a stack of books.",
    "An underwater photograph of a coral reef with schools of yellow fish, sun rays "
    "piercing the turquoise water from above.",
    "A network topology diagram: two office sites connected over a VPN tunnel, each with a "
    "router, firewall, switch and a few workstations.",
    "A smartphone mock-up showing a weather app screen with a seven-day forecast, placed on "
    "a marble surface next to sunglasses.",
    "A misty pine forest in the Pacific Northwest, a narrow trail covered in ferns, soft diffuse light, muted greens.",
    "A children's book illustration of a fox and a rabbit sharing an umbrella in the rain, "
    "gouache texture, gentle colours.",
    "A photo of a modern electric bicycle leaning against a brick wall in a city street, late afternoon sun.",
    "A pie chart showing a household budget split into housing, food, transport, savings "
    "and leisure, flat design with a legend.",
    "A panoramic view of the Manhattan skyline at dusk from Brooklyn, city lights turning "
    "on, the bridge in the foreground.",
    "A scientific illustration of a plant cell with nucleus, chloroplasts, vacuole, cell "
    "wall and mitochondria, each part labelled.",
    "A product shot of a stainless-steel chef's knife on a dark slate board with a few "
    "sliced tomatoes and basil leaves.",
    "A calm Japanese zen garden with raked gravel, moss-covered stones and a maple tree in autumn red, overcast light.",
    "An architectural rendering of a small timber-frame cabin with large glass walls in a "
    "snowy forest, warm interior light at dusk.",
    "A simple line icon set of twelve weather symbols (sun, cloud, rain, snow, storm, fog, "
    "wind and more), consistent 2px stroke.",
    "A vintage travel poster for the Amalfi coast, colourful houses on cliffs, lemon trees, "
    "a blue sea, bold retro typography.",
    "A state machine diagram for a vending machine with states idle, selecting, paying, dispensing and out of stock.",
    "A close-up photo of a mechanical keyboard with walnut keycaps and a brass knob, soft "
    "window light, shallow depth of field.",
    "A lavender field in Provence at sunset with rows converging to a stone farmhouse on the horizon.",
    "A timeline graphic of the history of computing from the abacus to smartphones, eight milestones with small icons.",
    "A bowl of ramen seen from above: soft-boiled egg, sliced pork, spring onions, nori and "
    "sesame seeds in a dark ceramic bowl.",
    "A wind farm on rolling green hills under a dramatic cloudy sky, one turbine in sharp focus in the foreground.",
    "A flat illustration of a team meeting around a whiteboard covered in sticky notes, "
    "diverse people, bright friendly colours.",
    "An entity-relationship diagram for a library system with tables for books, authors, "
    "members and loans, crow's foot notation.",
    "A frozen lake in Canada in winter, cracks in clear blue ice, snow-covered mountains and a pale sky.",
    "A product photo of a glass bottle of olive oil with a handwritten paper label, olives "
    "and a sprig of rosemary beside it.",
    "A detailed pencil sketch of an old stone bridge over a river in an English village, with ducks on the water.",
    "An orbital diagram of the inner solar system showing the Sun, Mercury, Venus, Earth "
    "and Mars with their orbits to scale.",
]


def build_images() -> None:
    """Write image_prompts.jsonl."""
    rows = [{"id": f"img-{index + 1:03d}", "prompt": prompt} for index, prompt in enumerate(IMAGE_PROMPTS)]
    write_jsonl(SAMPLE_DIR / "image_prompts.jsonl", rows)


# ---------------------------------------------------------------------- speech

SPEECH_TEXTS = [
    "Welcome to the quarterly planning meeting.",
    "Your order has shipped and should arrive on Thursday.",
    "Please hold while we connect you to the next available agent.",
    "The batch job finished in four minutes with no errors.",
    "Turn left at the next intersection, then continue for two kilometres.",
    "Today's forecast is sunny with a high of twenty-three degrees.",
    "The library closes at eight o'clock on weekdays.",
    "Remember to save your work before restarting the computer.",
    "Your meeting with the design team starts in fifteen minutes.",
    "The train to Edinburgh is now boarding on platform six.",
    "Thank you for calling. How can I help you today?",
    "The password must contain at least twelve characters.",
    "We have updated our privacy policy; please review the changes.",
    "Preheat the oven to one hundred and eighty degrees.",
    "The package could not be delivered because nobody was home.",
    "Press one for billing, two for technical support, or three for sales.",
    "The server will be down for maintenance on Sunday night.",
    "Please remember to bring your identification to the appointment.",
    "The museum's new exhibition opens next Friday.",
    "Your subscription will renew automatically on the first of the month.",
    "Water the tomatoes every morning during the hot weather.",
    "The report shows a twelve percent increase in sales this quarter.",
    "Flight two four seven to Lisbon has been delayed by thirty minutes.",
    "Mind the gap between the train and the platform.",
    "The customer asked for a refund because the item arrived damaged.",
    "Our office is closed on public holidays.",
    "Click the blue button in the top right corner to continue.",
    "The temperature will drop below freezing tonight.",
    "Congratulations, your application has been approved.",
    "Please speak clearly after the tone and leave a short message.",
]


def build_speech() -> None:
    """Write speech_texts.jsonl."""
    rows = [{"id": f"tts-{index + 1:03d}", "text": text} for index, text in enumerate(SPEECH_TEXTS)]
    write_jsonl(SAMPLE_DIR / "speech_texts.jsonl", rows)


# ----------------------------------------------------------------------- audio


@dataclass(frozen=True)
class Clip:
    """One recording: relative path (its extension picks the format), voice, sentence."""

    path: str
    language: str
    voice: str
    sentence: str


AUDIO_CLIPS = [
    Clip("en/welcome.wav", "en", "en-us", "Welcome to the quarterly planning meeting."),
    Clip("en/shipping_update.wav", "en", "en-us", "Your order has shipped and should arrive on Thursday."),
    Clip("en/weather.wav", "en", "en-gb", "Today's forecast is sunny with a high of twenty-three degrees."),
    Clip("en/library_hours.wav", "en", "en-us", "The library closes at eight o'clock on weekdays."),
    Clip("en/train_boarding.wav", "en", "en-gb", "The train to Edinburgh is now boarding on platform six."),
    Clip("en/password_rule.wav", "en", "en-us", "The password must contain at least twelve characters."),
    Clip("en/oven.flac", "en", "en-gb", "Preheat the oven to one hundred and eighty degrees."),
    Clip("en/mind_the_gap.ogg", "en", "en-gb", "Mind the gap between the train and the platform."),
    Clip("en/approved.mp3", "en", "en-us", "Congratulations, your application has been approved."),
    Clip(
        "en/meetings/standup_01.wav",
        "en",
        "en-us",
        "Yesterday I fixed the login bug and today I will review the open pull requests.",
    ),
    Clip(
        "en/meetings/standup_02.wav", "en", "en-gb", "I am blocked on the database migration until the backup finishes."
    ),
    Clip(
        "en/meetings/budget_review.wav",
        "en",
        "en-us",
        "The marketing budget is twelve percent over plan for this quarter.",
    ),
    Clip("en/meetings/action_items.wav", "en", "en-us", "Action item: Maria will send the revised timeline by Friday."),
    Clip("en/meetings/retro.flac", "en", "en-gb", "What went well this sprint was the faster code review turnaround."),
    Clip(
        "en/meetings/planning/roadmap.wav",
        "en",
        "en-us",
        "We will ship the search feature in March and the mobile app in June.",
    ),
    Clip(
        "en/meetings/planning/hiring.ogg",
        "en",
        "en-gb",
        "We plan to hire two backend engineers and one designer next quarter.",
    ),
    Clip(
        "en/support/refund_request.wav",
        "en",
        "en-us",
        "The customer asked for a refund because the item arrived damaged.",
    ),
    Clip(
        "en/support/reset_password.wav",
        "en",
        "en-gb",
        "To reset your password, click the link we sent to your email address.",
    ),
    Clip("en/support/outage.wav", "en", "en-us", "The server will be down for maintenance on Sunday night."),
    Clip("en/support/voicemail.mp3", "en", "en-us", "Please speak clearly after the tone and leave a short message."),
    Clip("fr/bienvenue.wav", "fr", "fr", "Bonjour et bienvenue à la réunion de planification."),
    Clip("fr/meteo.wav", "fr", "fr", "Demain, il fera beau avec une température de vingt degrés."),
    Clip("fr/livraison.flac", "fr", "fr", "Votre commande a été expédiée et arrivera jeudi."),
    Clip("fr/reunions/compte_rendu.wav", "fr", "fr", "La prochaine réunion aura lieu lundi à dix heures."),
]

SAMPLE_RATE = 16000
SPEECH_RATE_WPM = 165


def missing_audio_tools() -> list[str]:
    """Names of the external programs the audio part needs that are not installed."""
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def sox_formats() -> set[str]:
    """File formats this sox build supports (parsed from ``sox -h``)."""
    result = subprocess.run(["sox", "-h"], capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("AUDIO FILE FORMATS:"):
            return set(line.split(":", 1)[1].split())
    return set()


def synthesize(clip: Clip, target: Path) -> None:
    """Voice ``clip`` with espeak-ng and convert it with sox to 16 kHz mono."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        espeak = ["espeak-ng", "-v", clip.voice, "-s", str(SPEECH_RATE_WPM), "-w", str(raw)]
        subprocess.run([*espeak, "--", clip.sentence], check=True)
        bits = ["-b", "16"] if target.suffix in {".wav", ".flac"} else []
        # -R: repeatable mode, so dither and the Ogg stream serial number are stable.
        sox = ["sox", "-R", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", *bits, str(target)]
        subprocess.run(sox, check=True)


def expected_path(audio_path: Path) -> Path:
    """Where the known sentence of a recording is kept: ``<name>.expected.txt``."""
    return audio_path.with_name(audio_path.stem + ".expected.txt")


def manifest_row(clip: Clip) -> dict[str, str]:
    """The MANIFEST.jsonl entry for one recording."""
    return {
        "id": clip.path,
        "path": clip.path,
        "language": clip.language,
        "voice": f"espeak-ng/{clip.voice}",
        "sentence": clip.sentence,
    }


def record_clip(clip: Clip, out_dir: Path) -> None:
    """Write one recording and its expected transcript under ``out_dir``."""
    target = out_dir / clip.path
    synthesize(clip, target)
    expected_path(target).write_text(clip.sentence + "\n", encoding="utf-8")


def keep_committed_clip(clip: Clip, out_dir: Path) -> bool:
    """Copy a committed recording (and its transcript) into ``out_dir``, if there is one."""
    source = AUDIO_DIR / clip.path
    if not source.exists():
        return False
    (out_dir / clip.path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, out_dir / clip.path)
    shutil.copy2(expected_path(source), expected_path(out_dir / clip.path))
    return True


def build_audio_tree(out_dir: Path, formats: set[str]) -> list[dict[str, str]]:
    """Record every clip sox can write; keep committed copies of the others.

    Returns the manifest rows of the recordings now under ``out_dir``.
    """
    manifest = []
    for clip in AUDIO_CLIPS:
        if Path(clip.path).suffix[1:] in formats:
            record_clip(clip, out_dir)
        elif keep_committed_clip(clip, out_dir):
            print(f"{clip.path}: this sox cannot write it; kept the committed file", file=sys.stderr)
        else:
            print(f"skipping {clip.path}: this sox cannot write that format", file=sys.stderr)
            continue
        manifest.append(manifest_row(clip))
    return manifest


def build_audio() -> None:
    """Regenerate ``sample_data/audio/`` (skipped when espeak-ng or sox is missing)."""
    missing = missing_audio_tools()
    if missing:
        print(
            f"skipping audio: {', '.join(missing)} not installed "
            "(apt-get install -y espeak-ng sox libsox-fmt-all); the committed files stay",
            file=sys.stderr,
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "audio"
        manifest = build_audio_tree(staging, sox_formats())
        shutil.rmtree(AUDIO_DIR, ignore_errors=True)
        shutil.copytree(staging, AUDIO_DIR)
    write_jsonl(AUDIO_DIR / "MANIFEST.jsonl", manifest)
    print(f"wrote {shown(AUDIO_DIR)}/ ({len(manifest)} recordings)")


# ------------------------------------------------------------------------- main

PARTS: dict[str, Callable[[], None]] = {
    "corpus": build_corpus,
    "chat": build_chat,
    "completions": build_completions,
    "images": build_images,
    "speech": build_speech,
    "audio": build_audio,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(PARTS),
        help="build only this part (repeatable); default: all parts",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the requested parts in dependency order (corpus first)."""
    args = parse_args(argv)
    wanted = set(args.only or PARTS)
    SAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    for name, build in PARTS.items():
        if name in wanted:
            build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
