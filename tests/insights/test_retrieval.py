"""Retrieval: safe full-text queries on real FTS5 and PostgreSQL, rank fusion, vector top-k."""

from __future__ import annotations

import random
import re
import sqlite3
import struct
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import psycopg
import pytest

from ai_orchestration.insights import (
    MAX_QUERY_TERMS,
    VECTOR_DIMENSIONS,
    Passage,
    chunk,
    cosine_top_k,
    decode_vectors,
    encode_vector,
    fts5_query,
    generate_evaluation_set,
    pg_tsquery,
    reciprocal_rank_fusion,
    tsquery_terms,
)
from tests.fixtures.postgres import PostgresServer

# Questions a caller could send on purpose or by accident: query-language syntax of FTS5 and
# tsquery, quotes, SQL, control characters, odd unicode.
HOSTILE = [
    "",
    " ",
    '"',
    '""',
    "'",
    "''",
    "*",
    "pricing*",
    '"pricing"*',
    "NEAR(pricing discount)",
    "NEAR(a b, 2)",
    "pricing NEAR/3 discount",
    "text: pricing",
    "col:secret",
    "{text body}: pricing",
    "- pricing",
    "^pricing",
    "pricing AND NOT discount",
    "pricing OR",
    "OR OR OR",
    "AND",
    "(pricing",
    "pricing)",
    "pricing + discount",
    "'pricing' | 'discount' & !churn",
    "pricing:* & <-> discount",
    "pricing <2> discount",
    "a:A & b:B",
    "\\",
    "\\'; DROP TABLE insight_passages; --",
    "' OR 1=1 --",
    "\x00pricing\x00",
    "\x1b[31mpricing",
    "pricing\u200bdiscount",
    "\ufb01nance \uff30\uff32\uff29\uff23\uff29\uff2e\uff27 \uff12\uff10\uff12\uff15",
    "Müller café São Paulo",
    "価格 割引",
    "\U0001f4b0 \U0001f525 pricing",
    "snake_case_word",
    "e1234-a E1234-A",
    "x" * 5000,
    " ".join(f"word{i}" for i in range(200)),
]

FTS5_SHAPE = re.compile(r'"[^\W_]+"\*?(?: OR "[^\W_]+"\*?)*')
TSQUERY_SHAPE = re.compile(r"'[^\W_]+'(?::\*)?(?: \| '[^\W_]+'(?::\*)?)*")


def random_questions(seed: int, count: int) -> Iterator[str]:
    """Strings of random code points from every plane, ASCII syntax mixed in."""
    rng = random.Random(seed)
    syntax = "\"*:^()-+{}[]<>|&!'\\ NEAR AND OR NOT"
    for _ in range(count):
        chars = []
        for _ in range(rng.randint(0, 40)):
            roll = rng.random()
            if roll < 0.4:
                chars.append(rng.choice(syntax))
            elif roll < 0.7:
                chars.append(chr(rng.randint(0x20, 0x7E)))
            else:
                code = rng.randint(0, 0x10FFFF)
                if 0xD800 <= code <= 0xDFFF:
                    code = 0xFFFD  # lone surrogates cannot be encoded for the database
                chars.append(chr(code))
        yield "".join(chars)


def test_terms_drop_stopwords_short_words_and_repeats() -> None:
    question = "What is the PRICING and the discount, and the pricing for 5 seats of Acme's team?"
    assert tsquery_terms(question) == ["pricing", "discount", "seats", "acme", "team"]


def test_a_question_of_stopwords_has_no_query() -> None:
    for question in ["What is it and who did that?", "Tell me about the customer", "a b c", ""]:
        assert tsquery_terms(question) == []
        assert fts5_query(question) is None
        assert pg_tsquery(question) is None


def test_terms_are_normalised_letters_and_digits() -> None:
    # A ligature, full-width letters and digits, an umlaut, an underscore.
    question = "\ufb01nance \uff30\uff32\uff29\uff23\uff29\uff2e\uff27 \uff12\uff10\uff12\uff15"
    assert tsquery_terms(question + " Müller snake_case") == [
        "finance",
        "pricing",
        "2025",
        "müller",
        "snake",
        "case",
    ]


def test_terms_are_capped() -> None:
    terms = tsquery_terms(" ".join(f"word{i}" for i in range(100)))
    assert terms == [f"word{i}" for i in range(MAX_QUERY_TERMS)]


def test_query_texts() -> None:
    question = "Which discount on pricing for the EU team?"
    assert fts5_query(question) == '"discount" OR "pricing" OR "eu" OR "team"'
    assert fts5_query(question, prefix=True) == '"discount"* OR "pricing"* OR "eu" OR "team"*'
    assert pg_tsquery(question) == "'discount' | 'pricing' | 'eu' | 'team'"
    assert pg_tsquery(question, prefix=True) == "'discount':* | 'pricing':* | 'eu' | 'team':*"


@pytest.mark.parametrize("prefix", [False, True])
def test_hostile_questions_give_only_quoted_terms(prefix: bool) -> None:
    for question in [*HOSTILE, *random_questions(7, 500)]:
        fts5 = fts5_query(question, prefix=prefix)
        tsquery = pg_tsquery(question, prefix=prefix)
        assert (fts5 is None) == (tsquery is None) == (not tsquery_terms(question))
        if fts5 is not None and tsquery is not None:
            assert FTS5_SHAPE.fullmatch(fts5), fts5
            assert TSQUERY_SHAPE.fullmatch(tsquery), tsquery


@pytest.fixture
def fts() -> Iterator[sqlite3.Connection]:
    """An FTS5 table tokenised as the storage migration does."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE VIRTUAL TABLE passages USING fts5(text, tag UNINDEXED,"
        " tokenize='porter unicode61 remove_diacritics 2')"
    )
    connection.executemany(
        "INSERT INTO passages (text, tag) VALUES (?, ?)",
        [
            ("We asked for a discount on the pricing of 40 seats.", "pricing"),
            ("The contract renews on March 3; legal signs off.", "renewal"),
            ("Export fails with error E1234-A near the end of the file.", "error"),
            ("Meeting with Jürgen Müller at the café in São Paulo.", "meeting"),
            ("The secret column must never be matched by a filter.", "secret"),
        ],
    )
    yield connection
    connection.close()


def search(connection: sqlite3.Connection, question: str, *, prefix: bool = False) -> list[str]:
    query = fts5_query(question, prefix=prefix)
    if query is None:
        return []
    rows = connection.execute(
        "SELECT tag FROM passages WHERE passages MATCH ? ORDER BY bm25(passages), rowid",
        (query,),
    )
    return [row[0] for row in rows]


@pytest.mark.parametrize("prefix", [False, True])
def test_no_question_is_an_fts5_syntax_error(fts: sqlite3.Connection, prefix: bool) -> None:
    for question in [*HOSTILE, *random_questions(20261206, 2000)]:
        search(fts, question, prefix=prefix)  # raises sqlite3.OperationalError on bad syntax


def test_fts5_operators_are_searched_as_words(fts: sqlite3.Connection) -> None:
    # NEAR is a word here, not the NEAR group; "tag" is not a column filter.
    assert search(fts, "NEAR(pricing discount)") == ["pricing", "error"]
    assert search(fts, "tag: secret") == ["secret"]
    assert search(fts, "text:renewal") == ["renewal"]
    assert search(fts, '"discount" AND NOT seats*') == ["pricing"]
    assert search(fts, "e1234-A") == ["error"]
    assert search(fts, "Muller cafe") == ["meeting"]  # diacritics folded by the tokenizer


def test_prefix_matches_longer_words(fts: sqlite3.Connection) -> None:
    assert search(fts, "disc") == []
    assert search(fts, "disc", prefix=True) == ["pricing"]


def test_full_text_finds_planted_facts() -> None:
    evaluation = generate_evaluation_set(customers=3)
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE VIRTUAL TABLE passages USING fts5(text, customer UNINDEXED,"
        " interaction UNINDEXED, tokenize='porter unicode61 remove_diacritics 2')"
    )
    for interaction in evaluation.interactions:
        connection.executemany(
            "INSERT INTO passages VALUES (?, ?, ?)",
            [
                (piece.text, interaction.customer_id, interaction.interaction_id)
                for piece in chunk(interaction.text)
            ],
        )
    worded = [q for q in evaluation.questions if not q.paraphrase]
    found = 0
    for question in worded:
        rows = connection.execute(
            "SELECT interaction FROM passages WHERE passages MATCH ? AND customer = ?"
            " ORDER BY bm25(passages) LIMIT 5",
            (fts5_query(question.question), question.customer_id),
        ).fetchall()
        found += question.interaction_id in {row[0] for row in rows}
    assert found >= 0.9 * len(worded)


def test_no_question_is_a_tsquery_syntax_error(postgres_server: PostgresServer) -> None:
    queries = [
        query
        for question in [*HOSTILE, *random_questions(11, 300)]
        for prefix in (False, True)
        if (query := pg_tsquery(question, prefix=prefix)) is not None
    ]
    with psycopg.connect(
        host=str(postgres_server.socket_dir),
        port=postgres_server.port,
        user=postgres_server.user,
        dbname="postgres",
    ) as connection:
        # One statement: a syntax error in any query fails it.
        parsed = connection.execute(
            "SELECT count(to_tsquery('english', q)) FROM unnest(%s::text[]) AS q", [queries]
        ).fetchone()
        assert parsed == (len(queries),)
        matched = connection.execute(
            "SELECT q FROM unnest(%s::text[]) AS q"
            " WHERE to_tsvector('english', 'We asked for a discount on pricing near the end.')"
            " @@ to_tsquery('english', q) ORDER BY q",
            [[pg_tsquery("NEAR(pricing)"), pg_tsquery("'x' & !discount"), pg_tsquery("churn")]],
        ).fetchall()
    assert [row[0] for row in matched] == ["'discount'", "'near' | 'pricing'"]


def test_rrf_against_a_hand_computed_example() -> None:
    text_ranking, vector_ranking = [7, 3, 9], [3, 5, 7, 3]  # the repeated 3 counts once
    fused = reciprocal_rank_fusion([text_ranking, vector_ranking], k=60)
    raw = {7: 1 / 61 + 1 / 63, 3: 1 / 62 + 1 / 61, 5: 1 / 62, 9: 1 / 63}
    assert [item for item, _ in fused] == [3, 7, 5, 9]
    for item, score in fused:
        assert score == pytest.approx(raw[item] / (2 / 61))
    assert fused[0][1] < 1.0


def test_rrf_weights_and_normalisation() -> None:
    fused = reciprocal_rank_fusion([[1, 2], [2, 1]], k=0, weights=[3.0, 1.0])
    assert [item for item, _ in fused] == [1, 2]
    assert [score for _, score in fused] == pytest.approx([(3 + 1 / 2) / 4, (3 / 2 + 1) / 4])
    first_everywhere = reciprocal_rank_fusion([[4], [4]])
    assert first_everywhere[0][0] == 4
    assert first_everywhere[0][1] == pytest.approx(1.0)
    # A ranking of weight 0 adds nothing, not even its ids.
    assert [item for item, _ in reciprocal_rank_fusion([[1], [2]], weights=[1.0, 0.0])] == [1]
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


def test_rrf_ties_go_to_the_best_single_rank_then_the_smaller_id() -> None:
    # 20 scores 1/2 from rank 2 of the first ranking; 30 scores 0.5 * 1/1 from the second.
    fused = reciprocal_rank_fusion([[10, 20], [30]], k=0, weights=[1.0, 0.5])
    assert [item for item, _ in fused] == [10, 30, 20]
    assert fused[1][1] == fused[2][1]
    assert [i for i, _ in reciprocal_rank_fusion([[8, 6], [6, 8]])] == [6, 8]


def test_rrf_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([[1]], weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([[1]], weights=[-1.0])
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([[1]], weights=[float("nan")])
    with pytest.raises(ValueError, match="k must"):
        reciprocal_rank_fusion([[1]], k=-1)


Matrix = npt.NDArray[np.float32]


def unit_rows(rng: np.random.Generator, n: int, dimensions: int) -> Matrix:
    rows = rng.standard_normal((n, dimensions)).astype(np.float32)
    unit: Matrix = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return unit


def brute_force(query: Matrix, matrix: Matrix, ids: list[int], k: int) -> list[tuple[int, float]]:
    scores = matrix @ query
    order = sorted(range(len(ids)), key=lambda i: (-float(scores[i]), ids[i]))
    return [(ids[i], float(scores[i])) for i in order[:k]]


@pytest.mark.parametrize("k", [0, 1, 5, 50, 499, 500, 800])
def test_cosine_top_k_is_the_brute_force_sort(k: int) -> None:
    rng = np.random.default_rng(k)
    matrix = unit_rows(rng, 500, VECTOR_DIMENSIONS)
    query = unit_rows(rng, 1, VECTOR_DIMENSIONS)[0]
    ids = [int(i) for i in rng.permutation(10_000)[:500]]
    assert cosine_top_k(query, matrix, ids, k) == brute_force(query, matrix, ids, k)


def test_cosine_ties_go_to_the_smaller_id() -> None:
    rng = np.random.default_rng(3)
    base = unit_rows(rng, 4, 8)
    # Rows 0, 2 and 5 are the same vector: whichever two of them make the top 2, by id.
    matrix = np.stack([base[0], base[1], base[0], base[2], base[3], base[0]])
    ids = [50, 10, 40, 20, 30, 5]
    top = cosine_top_k(base[0], matrix, ids, 2)
    assert [item for item, _ in top] == [5, 40]
    assert top[0][1] == pytest.approx(1.0, abs=1e-6)


def test_cosine_of_an_empty_matrix_and_bad_shapes() -> None:
    query = np.zeros(VECTOR_DIMENSIONS, dtype=np.float32)
    assert cosine_top_k(query, decode_vectors([]), [], 10) == []
    assert cosine_top_k(query, np.empty((0,)), [], 10) == []
    with pytest.raises(ValueError, match="ids"):
        cosine_top_k(query, np.zeros((2, VECTOR_DIMENSIONS)), [1], 1)
    with pytest.raises(ValueError, match="does not fit"):
        cosine_top_k(query, np.zeros((2, 3)), [1, 2], 1)
    with pytest.raises(ValueError, match="one vector"):
        cosine_top_k(np.zeros((1, 3)), np.zeros((2, 3)), [1, 2], 1)
    with pytest.raises(ValueError, match="k must"):
        cosine_top_k(query, np.zeros((2, VECTOR_DIMENSIONS)), [1, 2], -1)


def test_vectors_round_trip_as_little_endian_float32() -> None:
    rng = np.random.default_rng(1)
    rows = unit_rows(rng, 3, VECTOR_DIMENSIONS)
    blobs = [encode_vector(row) for row in rows]
    assert all(len(blob) == VECTOR_DIMENSIONS * 4 for blob in blobs)
    assert blobs[0][:4] == struct.pack("<f", float(rows[0][0]))
    decoded = decode_vectors([blobs[0], bytearray(blobs[1]), memoryview(blobs[2])])
    assert decoded.dtype == np.float32
    assert decoded.shape == (3, VECTOR_DIMENSIONS)
    assert np.array_equal(decoded, rows)
    decoded[0, 0] = 2.0  # a matrix of its own, not a view of the blobs
    assert decode_vectors([]).shape == (0, VECTOR_DIMENSIONS)
    assert encode_vector([1.0, 2.0], dimensions=2) == struct.pack("<2f", 1.0, 2.0)


def test_vectors_of_the_wrong_size_or_not_finite_are_refused() -> None:
    with pytest.raises(ValueError, match="384"):
        encode_vector(np.zeros(383))
    with pytest.raises(ValueError, match="384"):
        encode_vector(np.zeros((1, VECTOR_DIMENSIONS)))
    with pytest.raises(ValueError, match="finite"):
        encode_vector([float("nan")] * VECTOR_DIMENSIONS)
    with pytest.raises(ValueError, match="finite"):
        encode_vector([float("inf")] * VECTOR_DIMENSIONS)
    good = encode_vector(np.zeros(VECTOR_DIMENSIONS))
    with pytest.raises(ValueError, match="blob 1 has 1532 bytes"):
        decode_vectors([good, good[:-4], good])


def test_a_passage_frames_its_text() -> None:
    when = datetime(2025, 1, 2, tzinfo=UTC)
    passage = Passage(1, "i-1", when, 10, 15, "hello")
    assert passage.score == 0.0
    with pytest.raises(ValueError, match="frame"):
        Passage(1, "i-1", when, 10, 14, "hello")
    with pytest.raises(ValueError, match="frame"):
        Passage(1, "i-1", when, -1, 4, "hello")
    with pytest.raises(ValueError, match="timezone"):
        Passage(1, "i-1", datetime(2025, 1, 2), 0, 5, "hello")
