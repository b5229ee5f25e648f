"""Customer insights domain core (issue #17): interactions, signals at ingest, chunking.

Deterministic pieces the storage layer and the ``InsightService`` servicer build on: sentiment
(VADER with a CRM lexicon and phrase rules), competitor, pricing, churn, escalation and legal
mentions with their spans, sentence-aware chunks with exact offsets, and the seeded evaluation
set of retrieval (histories with planted facts and the questions they answer). Plain dataclasses and
regular expressions; never imports grpc, generated protobuf code or the storage package.
"""

from ai_orchestration.insights._chunks import (
    DEFAULT_CHUNK_CHARS,
    chunk,
    sentence_spans,
)
from ai_orchestration.insights._detectors import (
    MAX_ALIASES,
    MAX_COMPETITORS,
    MAX_NAME_CHARS,
    CompetitorList,
    detect,
)
from ai_orchestration.insights._sentiment import (
    CRM_LEXICON,
    LABEL_THRESHOLDS,
    MAX_SENTENCES,
    MAX_SENTIMENT_CHARS,
    SentimentScorer,
    confidence_of,
    label_of,
)
from ai_orchestration.insights._signals import SignalExtractor
from ai_orchestration.insights._synthetic import (
    EvaluationSet,
    LabelledSnippet,
    Question,
    generate_evaluation_set,
    generate_sentiment_snippets,
)
from ai_orchestration.insights._types import (
    SIGNALS_VERSION,
    Chunk,
    Competitor,
    Direction,
    Interaction,
    InteractionKind,
    JsonValue,
    Mention,
    MentionKind,
    Sentiment,
    SentimentLabel,
    Signals,
)

__all__ = [
    "CRM_LEXICON",
    "DEFAULT_CHUNK_CHARS",
    "LABEL_THRESHOLDS",
    "MAX_ALIASES",
    "MAX_COMPETITORS",
    "MAX_NAME_CHARS",
    "MAX_SENTENCES",
    "MAX_SENTIMENT_CHARS",
    "SIGNALS_VERSION",
    "Chunk",
    "Competitor",
    "CompetitorList",
    "Direction",
    "EvaluationSet",
    "Interaction",
    "InteractionKind",
    "JsonValue",
    "LabelledSnippet",
    "Mention",
    "MentionKind",
    "Question",
    "Sentiment",
    "SentimentLabel",
    "SentimentScorer",
    "SignalExtractor",
    "Signals",
    "chunk",
    "confidence_of",
    "detect",
    "generate_evaluation_set",
    "generate_sentiment_snippets",
    "label_of",
    "sentence_spans",
]
