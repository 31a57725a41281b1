"""The matcher's two TF-IDF models, fitted by scikit-learn once and then read from a cache file.

Importing scikit-learn (and the SciPy it pulls in) costs ~0.75 s, paid by every `overture plan`
process, although the fitted models depend only on the documents they were fitted on. So a fit's
result — each model's vocabulary, idf and document matrix, as plain numpy arrays in an `.npz`
(no pickle) — is saved under a name made from those documents and the scikit-learn version; a
later process loads it without importing scikit-learn, and computes a query's vector and its
similarities with the same arithmetic scikit-learn and SciPy use, so the scores are the same floats.
A file that cannot be read or does not fit its name is fitted again and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

_FORMAT = 1
"""Bumped when what is saved, or how it is read, changes: older files then miss."""
_CHAR_NGRAMS = (3, 5)
_WHITE_SPACES = re.compile(r"\s\s+")


def word_tokens(text: str) -> list[str]:
    """The word model's analyzer: the text is already concept tokens separated by spaces."""
    return text.split()


def char_tokens(text: str) -> list[str]:
    """The character model's analyzer, for the fit and for every query: the n-grams (3 to 5
    characters) of each word of the lowercased text padded with a space either side, a word shorter
    than n counted once (what `analyzer="char_wb"` gives). Ours rather than scikit-learn's so
    that a model read from the cache analyses queries as the fit did without importing it."""
    text = _WHITE_SPACES.sub(" ", text.lower())
    low, high = _CHAR_NGRAMS
    out: list[str] = []
    for word in text.split():
        padded = f" {word} "
        length = len(padded)
        for n in range(low, high + 1):
            offset = 0
            out.append(padded[:n])
            while offset + n < length:
                offset += 1
                out.append(padded[offset : offset + n])
            if offset == 0:
                break
    return out


def word_vectorizer() -> TfidfVectorizer:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer=word_tokens, sublinear_tf=True, norm="l2")


def char_vectorizer() -> TfidfVectorizer:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer=char_tokens, sublinear_tf=True)


@dataclass(frozen=True)
class TfidfModel:
    """A fitted `TfidfVectorizer`'s vocabulary and idf, and the CSR matrix of the documents it was
    fitted on (`data`, `indices`, `indptr`)."""

    analyzer: Callable[[str], list[str]]
    terms: np.ndarray
    """The vocabulary, by column."""
    vocabulary: dict[str, int]
    idf: np.ndarray
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray

    @property
    def vocabulary_(self) -> dict[str, int]:
        """`vocabulary` by the fitted vectorizer's name for it, which `planner.reader` reads."""
        return self.vocabulary

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1

    def vector(self, text: str) -> np.ndarray:
        """`text`'s TF-IDF vector, dense: `vectorizer.transform` (sublinear tf, idf, l2 norm)
        without the input checks sklearn runs on every call, which cost more than the math."""
        vector = np.zeros(len(self.vocabulary))
        for token in self.analyzer(text):
            column = self.vocabulary.get(token)
            if column is not None:
                vector[column] += 1.0
        present = vector > 0
        vector[present] = (1.0 + np.log(vector[present])) * self.idf[present]
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """Each document's dot product with `query`: SciPy's `matrix @ query` without SciPy.
        bincount adds each row's products in stored order from 0.0, as SciPy's csr_matvec does,
        so the sums are the same floats, not merely close ones."""
        row_of = np.repeat(np.arange(self.rows), np.diff(self.indptr))
        return np.bincount(row_of, weights=self.data * query[self.indices], minlength=self.rows)


def _model(
    analyzer: Callable[[str], list[str]], terms: np.ndarray, arrays: dict[str, np.ndarray]
) -> TfidfModel:
    return TfidfModel(
        analyzer,
        terms,
        {str(t): i for i, t in enumerate(terms.tolist())},
        arrays["idf"],
        arrays["data"],
        arrays["indices"],
        arrays["indptr"],
    )


def _fit(
    vectorizer: TfidfVectorizer, analyzer: Callable[[str], list[str]], docs: Sequence[str]
) -> TfidfModel:
    matrix = vectorizer.fit_transform(docs).tocsr()
    terms = np.array(sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__), dtype=str)
    return _model(
        analyzer,
        terms,
        {"idf": vectorizer.idf_, "data": matrix.data, "indices": matrix.indices, "indptr": matrix.indptr},
    )


def fingerprint(word_docs: Sequence[str], char_docs: Sequence[str]) -> str:
    """The cache file's key: what is fitted (the catalog's actions as the lexicon reads them, so a
    change to either that changes a document changes the key) and by which scikit-learn."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        sklearn = version("scikit-learn")
    except PackageNotFoundError:
        sklearn = "absent"
    payload = json.dumps([_FORMAT, sklearn, list(word_docs), list(char_docs)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def default_cache_dir() -> Path:
    """`$OVERTURE_DATA_DIR/cache` when the data folder is set (the service, the tests), else the
    user's cache folder (`$XDG_CACHE_HOME/overture`, by default ~/.cache/overture): `overture plan`
    runs from any folder and should not leave a `.overture` folder in each."""
    data_dir = os.environ.get("OVERTURE_DATA_DIR")
    if data_dir:
        return Path(data_dir) / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "overture"


def cache_file(directory: Path, key: str) -> Path:
    return directory / f"matcher-{key}.npz"


def _load(path: Path, rows: int) -> tuple[TfidfModel, TfidfModel] | None:
    """The two models saved at `path`, or None when it is missing, unreadable or inconsistent
    (a truncated write, another version's layout, a file edited by hand)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        models = tuple(
            _model(
                analyzer,
                arrays[f"{kind}_terms"],
                {k: arrays[f"{kind}_{k}"] for k in ("idf", "data", "indices", "indptr")},
            )
            for kind, analyzer in (("word", word_tokens), ("char", char_tokens))
        )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    for model in models:
        columns, stored = len(model.terms), len(model.data)
        if not (
            model.terms.dtype.kind == "U"
            and model.idf.shape == (columns,)
            and model.indptr.shape == (rows + 1,)
            and model.indices.shape == (stored,)
            and model.data.dtype == np.float64
            and model.idf.dtype == np.float64
            and model.indptr[0] == 0
            and model.indptr[-1] == stored
            and bool(np.all(np.diff(model.indptr) >= 0))
            and (stored == 0 or (int(model.indices.min()) >= 0 and int(model.indices.max()) < columns))
        ):
            return None
    return models[0], models[1]


def _save(path: Path, words: TfidfModel, chars: TfidfModel) -> None:
    arrays: dict[str, Any] = {}
    for kind, model in (("word", words), ("char", chars)):
        arrays |= {
            f"{kind}_terms": model.terms,
            f"{kind}_idf": model.idf,
            f"{kind}_data": model.data,
            f"{kind}_indices": model.indices,
            f"{kind}_indptr": model.indptr,
        }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # written aside and renamed: a process reading the cache sees the old file or the whole new one
        handle, temporary = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **arrays)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a cache that cannot be written (read-only home) only costs the next process a fit


def fitted_models(
    word_docs: Sequence[str], char_docs: Sequence[str], directory: Path | None = None
) -> tuple[TfidfModel, TfidfModel]:
    """The word and character models of these documents: from the cache in `directory` (default
    `default_cache_dir()`) when a good file is there, else fitted by scikit-learn and saved."""
    path = cache_file(directory or default_cache_dir(), fingerprint(word_docs, char_docs))
    loaded = _load(path, len(word_docs))
    if loaded is not None:
        return loaded
    words = _fit(word_vectorizer(), word_tokens, word_docs)
    chars = _fit(char_vectorizer(), char_tokens, char_docs)
    _save(path, words, chars)
    return words, chars
