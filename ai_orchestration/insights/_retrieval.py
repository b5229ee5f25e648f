"""Hybrid retrieval, storage-agnostic: safe full-text queries, rank fusion, vector top-k.

The storage layer runs the queries (FTS5 on SQLite, ``tsvector`` on PostgreSQL, a numpy scan or
pgvector for vectors); this module decides what is asked and how the rankings combine, so both
backends answer the same question the same way.

A question is free text from a caller, so it never reaches a query language as written: it is cut
into letter-and-digit terms, and only those terms, quoted, are put into a query. No operator,
column filter, quote or wildcard of FTS5 or tsquery can be spelled with letters and digits alone.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt

VECTOR_DIMENSIONS: Final[int] = 384
"""Width of an e5-small embedding, the vectors :func:`encode_vector` stores."""

MAX_QUERY_TERMS: Final[int] = 32
"""Terms of a question kept for a full-text query; a pasted e-mail must not become a huge OR."""

MAX_TERM_CHARS: Final[int] = 64
"""Longer "words" (encoded blobs, runs of one key) are no search terms; PostgreSQL refuses
lexemes over 2,047 bytes."""

RRF_K: Final[int] = 60
"""The constant of reciprocal rank fusion from Cormack et al. (2009); damps the top ranks."""

# Letters and digits only: "_" is a separator to FTS5's unicode61 and to PostgreSQL's parser.
_WORD = re.compile(r"[^\W_]+")
_MIN_PREFIX_CHARS = 4
# The Snowball English list PostgreSQL's 'english' configuration uses, and words that frame a
# question about a customer rather than ask for content.
_STOPWORDS: Final[frozenset[str]] = frozenset(
    {
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
        "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
        "by", "can", "did", "do", "does", "doing", "don", "down", "during", "each", "few", "for",
        "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
        "him", "himself", "his", "how", "if", "in", "into", "is", "it", "its", "itself", "just",
        "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once",
        "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she",
        "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
        "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
        "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
        "while", "who", "whom", "why", "will", "with", "you", "your", "yours", "yourself",
        "yourselves", "i",
        # Question framing.
        "also", "could", "would", "may", "might", "must", "shall", "us", "please", "tell", "know",
        "let", "get", "got", "give", "show", "find", "anything", "something", "many", "much",
        "ever", "customer", "customers", "client", "clients", "ask", "asked", "asking", "say",
        "said", "says", "saying", "mention", "mentioned", "mentions", "talk", "talked", "write",
        "wrote", "written",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk of one interaction, as the answering step sees it."""

    passage_id: int
    """The stored passage (one chunk of an interaction); the id rankings are fused on."""
    interaction_id: str
    """The interaction the chunk was cut from; what an answer's citation points at."""
    occur_time: datetime
    """When the interaction happened (timezone-aware): answers weigh recent facts."""
    start: int
    """Offset of the chunk's first character in the interaction's text (subject + body)."""
    end: int
    """Offset just past its last character."""
    text: str
    """The chunk itself, ``interaction.text[start:end]``."""
    score: float = 0.0
    """Fused relevance from 0 to 1 (see :func:`reciprocal_rank_fusion`); 0 when unranked."""

    def __post_init__(self) -> None:
        # A citation is only checkable if the offsets really frame the text.
        if not 0 <= self.start <= self.end or self.end - self.start != len(self.text):
            raise ValueError("start and end must frame text: end - start == len(text)")
        if self.occur_time.utcoffset() is None:
            raise ValueError("occur_time must be timezone-aware")


def content_words(text: str) -> list[str]:
    """Lower-case letter-and-digit words of ``text`` in order, NFKC-normalised, with duplicates.

    The same cut as the query terms, so that a question's terms can be found in a passage's.
    """
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def tsquery_terms(question: str) -> list[str]:
    """The search terms of a question: its words without stopwords, one-character words and
    words over :data:`MAX_TERM_CHARS`, each once, in order of first use, at most
    :data:`MAX_QUERY_TERMS`.

    Each term is letters and digits only, so it can go into FTS5 or ``to_tsquery`` quoted, or be
    bound as a parameter, without carrying an operator. Empty when nothing is left.
    """
    terms: list[str] = []
    for word in content_words(question):
        if 1 < len(word) <= MAX_TERM_CHARS and word not in _STOPWORDS and word not in terms:
            terms.append(word)
            if len(terms) == MAX_QUERY_TERMS:
                break
    return terms


def fts5_query(question: str, *, prefix: bool = False) -> str | None:
    """An FTS5 ``MATCH`` expression for a question: its terms quoted and joined by ``OR``.

    Bind it as a parameter. With ``prefix`` a term of four or more characters also matches
    longer words (``"contract"*``); off by default because the porter tokenizer already joins
    the forms of a word, as PostgreSQL's stemmer does. ``None`` when the question has no terms:
    the caller skips full text rather than match everything.
    """
    terms = tsquery_terms(question)
    if not terms:
        return None
    return " OR ".join(
        f'"{t}"*' if prefix and len(t) >= _MIN_PREFIX_CHARS else f'"{t}"' for t in terms
    )


def pg_tsquery(question: str, *, prefix: bool = False) -> str | None:
    """Text for PostgreSQL's ``to_tsquery('english', :q)``: ``'pricing' | 'discount'``.

    Bind it as a parameter. The terms are letters and digits only, so the text holds no
    ``& ! ( ) < > :`` of the caller's; with ``prefix`` a term of four or more characters is
    followed by ``:*``. ``None`` when the question has no terms.
    """
    terms = tsquery_terms(question)
    if not terms:
        return None
    return " | ".join(
        f"'{t}':*" if prefix and len(t) >= _MIN_PREFIX_CHARS else f"'{t}'" for t in terms
    )


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]],
    *,
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """Fuses rankings of ids (each best first) into one: ``(id, score)``, best first.

    An id scores ``sum(weight / (k + rank))`` over the rankings it is in (rank from 1; a repeat
    within one ranking counts at its first place), divided by the best score attainable (first
    in every ranking), so 1.0 means first everywhere and scores compare across questions. Ties
    go to the better single rank, then the smaller id, so the order is deterministic. A ranking
    of weight 0 is ignored.
    """
    if k < 0:
        raise ValueError(f"k must not be negative, got {k}")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError("weights must be finite and not negative")
    best_possible = sum(w / (k + 1) for w in weights)
    scores: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if weight == 0:
            continue
        seen: set[int] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    order = sorted(scores, key=lambda item: (-scores[item], best_rank[item], item))
    return [(item, scores[item] / best_possible) for item in order]


def cosine_top_k(
    query: npt.ArrayLike, matrix: npt.ArrayLike, ids: Sequence[int], k: int
) -> list[tuple[int, float]]:
    """The ``k`` rows of ``matrix`` nearest ``query`` by cosine: ``(id, similarity)``, best first.

    Rows and query must be unit vectors (e5 embeddings are normalised), so the cosine is the dot
    product. Equal similarities go to the smaller id. Fewer than ``k`` rows give them all.
    """
    if k < 0:
        raise ValueError(f"k must not be negative, got {k}")
    vector = np.asarray(query, dtype=np.float32)
    rows = np.asarray(matrix, dtype=np.float32)
    if vector.ndim != 1:
        raise ValueError(f"query must be one vector, got shape {vector.shape}")
    if rows.size == 0:
        rows = rows.reshape(0, vector.shape[0])
    if rows.ndim != 2 or rows.shape[1] != vector.shape[0]:
        raise ValueError(f"matrix of shape {rows.shape} does not fit a query of {vector.shape}")
    if len(ids) != rows.shape[0]:
        raise ValueError(f"{len(ids)} ids for {rows.shape[0]} rows")
    if k == 0 or rows.shape[0] == 0:
        return []
    similarities = rows @ vector
    ids_array = np.asarray(ids, dtype=np.int64)
    if k < rows.shape[0]:
        # Partition instead of sorting all rows, but keep every row tied with the k-th so that
        # the tie-break by id below sees all candidates.
        kth = np.partition(similarities, rows.shape[0] - k)[rows.shape[0] - k]
        candidates = np.flatnonzero(similarities >= kth)
    else:
        candidates = np.arange(rows.shape[0])
    order = np.lexsort((ids_array[candidates], -similarities[candidates]))[:k]
    chosen = candidates[order]
    return [(int(ids_array[i]), float(similarities[i])) for i in chosen]


def encode_vector(vector: npt.ArrayLike, *, dimensions: int = VECTOR_DIMENSIONS) -> bytes:
    """A vector as a little-endian float32 blob, the same bytes on every machine.

    Raises ``ValueError`` for a vector of another length or with a NaN or an infinity: stored
    vectors are scanned for every question, so a bad one is refused at the door.
    """
    array = np.asarray(vector, dtype=np.float64)
    if array.shape != (dimensions,):
        raise ValueError(f"expected a vector of {dimensions} numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("a vector must hold finite numbers only")
    return array.astype("<f4").tobytes()


def decode_vectors(
    blobs: Iterable[bytes | bytearray | memoryview], *, dimensions: int = VECTOR_DIMENSIONS
) -> npt.NDArray[np.float32]:
    """The blobs of :func:`encode_vector` as one ``(n, dimensions)`` float32 matrix.

    Raises ``ValueError`` naming the first blob of the wrong length.
    """
    width = dimensions * 4
    parts: list[bytes] = []
    for index, blob in enumerate(blobs):
        data = bytes(blob)
        if len(data) != width:
            raise ValueError(f"blob {index} has {len(data)} bytes, expected {width}")
        parts.append(data)
    flat = np.frombuffer(b"".join(parts), dtype="<f4")
    return flat.astype(np.float32).reshape(len(parts), dimensions)
