"""The output folder as a checkpoint, local or in object storage alike.

    ids.py      done ids as 64-bit hashes (IdSet), and which failures a rerun leaves settled
    lock.py     the run lock (LockHeld when another live run holds it)
    folder.py   OutputFolder: results/, failures/, job.json and lock under the output path
"""

from __future__ import annotations

from pipeline.checkpoint.folder import OutputFolder, open_output
from pipeline.checkpoint.ids import SETTLED_COLUMNS, IdSet, id_hash, settled_failure_ids
from pipeline.checkpoint.lock import LockHeld, now_iso

__all__ = ["SETTLED_COLUMNS", "IdSet", "LockHeld", "OutputFolder", "id_hash", "now_iso", "open_output",
           "settled_failure_ids"]
