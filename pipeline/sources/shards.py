"""An input cut into shards, the same way every time, so that workers can read it side by side.

    JSONL       byte ranges, each starting at a line (one ranged read per shard, no scan of the others)
    Parquet     row ranges on row-group boundaries when there are enough row groups, else even row ranges
    folders     ranges of positions in the sorted walk (by path); a gzip'd JSONL by ranges of lines

A shard is a small value (picklable, sent to a worker); `open_shard` turns it back into a Source reading
only its rows, with the line numbers the whole input gives them. Which rows a shard holds depends on the
input and the number of shards only; exactly-once does not rest on it (rows done are skipped by id).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.sources.base import Row, Source
from pipeline.sources.jsonl import READ_CHUNK, ByteSpan, JsonlSource
from pipeline.sources.parquet import ParquetSource


@dataclass(frozen=True)
class Shard:
    """Rows [start, end): byte offsets (`by_bytes`, JSONL) or 0-based positions in the input's order."""

    index: int
    start: int
    end: int
    first_line: int = 1
    by_bytes: bool = False

    def describe(self) -> str:
        unit = "bytes" if self.by_bytes else "rows"
        return f"shard {self.index} ({unit} {self.start}-{self.end})"


def plan_shards(source: Source, total: int, count: int) -> list[Shard]:
    """At most `count` shards covering every row of `source` (`total` rows) once."""
    count = max(1, min(count, total))
    if isinstance(source, JsonlSource) and source.seekable():
        return _byte_shards(source, count)
    if isinstance(source, ParquetSource):
        return _row_shards(_parquet_cuts(source.row_group_sizes(), total, count))
    return _row_shards(_even_cuts(total, count))


def open_shard(source: Source, shard: Shard) -> Source:
    """A Source of the shard's rows only."""
    if shard.by_bytes:
        assert isinstance(source, JsonlSource)
        return source.spanning(ByteSpan(shard.start, shard.end, shard.first_line))
    if isinstance(source, ParquetSource):
        return source.ranging(range(shard.start, shard.end))
    return RowRange(source, shard.start, shard.end)


def _even_cuts(total: int, count: int) -> list[int]:
    return [total * k // count for k in range(count + 1)]


def _parquet_cuts(sizes: list[int], total: int, count: int) -> list[int]:
    """Cuts on row-group boundaries (each read once, by one worker) when there are enough groups."""
    if len(sizes) < count:
        return _even_cuts(total, count)
    bounds = list(itertools.accumulate(sizes, initial=0))
    cuts = [0]
    for k in range(1, count):
        target = total * k // count
        cut = min(bounds, key=lambda b: abs(b - target))
        if cuts[-1] < cut < total:
            cuts.append(cut)
    return [*cuts, total]


def _row_shards(cuts: list[int]) -> list[Shard]:
    spans = [(a, b) for a, b in itertools.pairwise(cuts) if b > a]
    return [Shard(i, a, b, first_line=a + 1) for i, (a, b) in enumerate(spans)]


def _byte_shards(source: JsonlSource, count: int) -> list[Shard]:
    """One pass over the file: each cut moved to the start of the next line, lines counted on the way."""
    size = source.size()
    targets = [size * k // count for k in range(1, count)]
    cuts: list[tuple[int, int]] = [(0, 1)]  # (offset, number of the line starting there)
    position, lines = 0, 1
    with source.raw() as handle:
        while targets and (chunk := handle.read(READ_CHUNK)):
            end = position + len(chunk)
            while targets and targets[0] < end:
                newline = chunk.find(b"\n", max(0, targets[0] - position))
                if newline < 0:
                    targets[0] = end  # this line goes on into the next chunk
                    break
                cut = position + newline + 1
                cuts.append((cut, lines + chunk.count(b"\n", 0, newline + 1)))
                targets = [t for t in targets if t >= cut]
            lines += chunk.count(b"\n")
            position = end
    ends = [offset for offset, _ in cuts[1:]] + [size]
    spans = [(start, end, line) for (start, line), end in zip(cuts, ends, strict=True) if end > start]
    return [Shard(i, start, end, first_line=line, by_bytes=True) for i, (start, end, line) in enumerate(spans)]


class RowRange:
    """Rows [start, end) of any source, skipping those before (folders and gzip'd files cannot seek)."""

    def __init__(self, source: Source, start: int, end: int) -> None:
        self._source = source
        self.path = source.path
        self._start, self._end = start, end

    def rows(self) -> Iterator[Row]:
        return itertools.islice(self._source.rows(), self._start, self._end)

    def ids(self) -> Iterator[tuple[str, int]]:
        return itertools.islice(self._source.ids(), self._start, self._end)

    def count(self) -> int:
        return sum(1 for _ in self.ids())

    def columns(self) -> list[str] | None:
        return self._source.columns()
