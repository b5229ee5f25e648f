"""GenerateInsights: the rules decide, the model only words, and its words are checked.

The insight rules (:func:`~ai_orchestration.insights.select_insights`) decide every insight, its
confidence and its evidence from the stored signals. One model call then rewrites the titles and
descriptions from the facts alone: the model never sees the customer's text (nothing to inject,
nothing of the customer in any cache). A worded insight is kept only if it passes its checks (not
empty, within bounds, no figure that is not among its facts); otherwise the deterministic text
stays and the insight's usage says ``degraded``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from ai_orchestration.insights import (
    Citation,
    InsightDraft,
    InsightKind,
    JsonValue,
    ScoredInteraction,
    StoredInsight,
    StoredInteraction,
    select_insights,
)
from ai_orchestration.llm import CallContext, ChatMessage, CompletionRequest, LlmGateway

__all__ = [
    "HistorySource",
    "InsightGenerator",
    "InsightProgress",
    "InsightSink",
    "word_problems",
]

MAX_TITLE_CHARS: Final[int] = 120
MAX_DESCRIPTION_CHARS: Final[int] = 600
MAX_QUOTE_CHARS: Final[int] = 300
"""Evidence quoting a whole interaction is cut to its first characters (still a verbatim slice)."""
_FIGURE = re.compile(r"\d+(?:[.,]\d+)?")
_SYSTEM = (
    "You rewrite short CRM insights for an account manager. For each item, write a clear title "
    f"(at most {MAX_TITLE_CHARS} characters) and a one- or two-sentence description (at most "
    f"{MAX_DESCRIPTION_CHARS} characters) that say exactly what the facts say. Use only the "
    "figures and names in the item's facts and draft; add no figure, name, date or promise of "
    "your own. Keep the items' codes and order. Answer with the JSON document only."
)


class HistorySource(Protocol):
    """Where histories come from (``storage.InteractionRepository``)."""

    async def history(
        self, tenant_id: str, customer_id: str, *, since: datetime | None = None
    ) -> list[StoredInteraction]:
        """The customer's interactions with their signals, oldest first."""


class InsightSink(Protocol):
    """Where generated insights go (``storage.CustomerInsightRepository``)."""

    async def add(self, tenant_id: str, insights: Sequence[StoredInsight]) -> None:
        """Store generated insights."""


@dataclass(frozen=True, slots=True)
class InsightProgress:
    """A stage of a generation, for the caller's progress display."""

    stage: str
    interactions: int


class InsightGenerator:
    """Decides, words, stores and yields a customer's insights."""

    def __init__(
        self,
        *,
        histories: HistorySource,
        insights: InsightSink,
        gateway: LlmGateway,
        model: str = "fast",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``clock`` is the "now" of the rules (days of silence, trend windows)."""
        self._histories = histories
        self._insights = insights
        self._gateway = gateway
        self._model = model
        self._clock = clock

    async def generate(
        self,
        tenant_id: str,
        customer_id: str,
        *,
        kinds: Collection[InsightKind] = (),
        since: datetime | None = None,
    ) -> AsyncIterator[InsightProgress | StoredInsight]:
        """Progress, then every insight (stored before it is yielded)."""
        yield InsightProgress("reading interactions", 0)
        stored = await self._histories.history(tenant_id, customer_id)
        considered = [s for s in stored if since is None or s.interaction.occur_time >= since]
        yield InsightProgress("deciding insights", len(considered))
        now = self._clock()
        drafts = select_insights(
            [ScoredInteraction.of(s.interaction, s.signals) for s in stored],
            now=now,
            kinds=kinds,
            since=since,
        )
        if not drafts:
            return
        yield InsightProgress("wording insights", len(considered))
        texts = {s.interaction.interaction_id: s.interaction.text for s in stored}
        words, usage = await self._word(tenant_id, drafts)
        insights = [
            StoredInsight(
                insight_id=str(uuid.uuid4()),
                customer_id=customer_id,
                kind=draft.kind.value,
                code=draft.code,
                title=title,
                description=description,
                confidence=draft.confidence,
                evidence=tuple(_citations(draft, texts)),
                usage={**usage[index], "degraded": degraded},
                created_at=now,
            )
            for index, (draft, (title, description, degraded)) in enumerate(
                zip(drafts, words, strict=True)
            )
        ]
        await self._insights.add(tenant_id, insights)
        for insight in insights:
            yield insight

    async def _word(
        self, tenant_id: str, drafts: list[InsightDraft]
    ) -> tuple[list[tuple[str, str, bool]], list[dict[str, JsonValue]]]:
        fallback = [(d.title, d.description, True) for d in drafts]
        completion = await self._gateway.complete(_request(self._model, tenant_id, drafts))
        usage = _split_usage(
            completion.usage.prompt_tokens,
            completion.usage.completion_tokens,
            completion.usage.cost_usd,
            f"{completion.model}/{completion.deployment}",
            len(drafts),
        )
        if completion.degraded:
            return fallback, usage
        try:
            items = json.loads(completion.text)["items"]
        except (ValueError, KeyError, TypeError):
            return fallback, usage
        if not isinstance(items, list) or len(items) != len(drafts):
            return fallback, usage
        worded = [_checked(draft, item) for draft, item in zip(drafts, items, strict=True)]
        return worded, usage


def _checked(draft: InsightDraft, item: object) -> tuple[str, str, bool]:
    """The model's words for ``draft`` when they pass, else the deterministic ones (degraded)."""
    fields = item if isinstance(item, dict) else {}
    title, description = fields.get("title"), fields.get("description")
    if isinstance(title, str) and isinstance(description, str):
        title, description = title.strip(), description.strip()
        if not word_problems(draft, title, description):
            return title, description, False
    return draft.title, draft.description, True


def word_problems(draft: InsightDraft, title: str, description: str) -> list[str]:
    """Why a model's wording of ``draft`` may not be shown (empty: it may)."""
    problems: list[str] = []
    if not title or not description:
        problems.append("empty")
    if len(title) > MAX_TITLE_CHARS or len(description) > MAX_DESCRIPTION_CHARS:
        problems.append("too long")
    if "\n" in title:
        problems.append("title on several lines")
    allowed = set(_FIGURE.findall(f"{draft.title} {draft.description}"))
    allowed |= {_plain(v) for v in draft.facts.values()}
    invented = set(_FIGURE.findall(f"{title} {description}")) - allowed
    if invented:
        problems.append(f"figures not among the facts: {', '.join(sorted(invented))}")
    return problems


def _plain(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _request(model: str, tenant_id: str, drafts: list[InsightDraft]) -> CompletionRequest:
    items = [
        {
            "code": d.code,
            "facts": dict(d.facts),
            "draft_title": d.title,
            "draft_description": d.description,
        }
        for d in drafts
    ]
    schema = {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "title": {"type": "string", "maxLength": MAX_TITLE_CHARS},
                        "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS},
                    },
                    "required": ["code", "title", "description"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["items"],
        "additionalProperties": False,
    }
    return CompletionRequest(
        model=model,
        messages=(
            ChatMessage("system", _SYSTEM),
            ChatMessage("user", json.dumps({"items": items}, ensure_ascii=False)),
        ),
        context=CallContext(tenant_id=tenant_id, step="generate_insights"),
        max_tokens=160 * len(drafts),
        response_schema=schema,
        response_schema_name="insights",
    )


def _split_usage(
    prompt: int, completion: int, cost: float, model: str, parts: int
) -> list[dict[str, JsonValue]]:
    """The call's usage shared out over the insights it worded, so that sums stay right."""
    shares: list[dict[str, JsonValue]] = []
    for index in range(parts):
        first = index == 0
        shares.append(
            {
                "prompt_tokens": prompt // parts + (prompt % parts if first else 0),
                "completion_tokens": completion // parts + (completion % parts if first else 0),
                "cost_micro_usd": round(cost * 1e6 / parts),
                "model": model,
            }
        )
    return shares


def _citations(draft: InsightDraft, texts: dict[str, str]) -> list[dict[str, JsonValue]]:
    citations: list[dict[str, JsonValue]] = []
    for evidence in draft.evidence:
        text = texts.get(evidence.interaction_id)
        if text is None:
            continue
        end = min(evidence.end, evidence.start + MAX_QUOTE_CHARS, len(text))
        citation = Citation(
            interaction_id=evidence.interaction_id,
            quote=text[evidence.start : end],
            relevance=draft.confidence,
            start=evidence.start,
            end=end,
        )
        citations.append(citation.to_json())
    return citations
