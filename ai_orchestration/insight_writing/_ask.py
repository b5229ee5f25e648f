"""AskCustomer: hybrid retrieval, then an answer that cites its passages, or quotes them.

Retrieval fuses the full-text ranking and the vector ranking of the customer's passages
(reciprocal rank fusion), so a passage is found by its words before its vector exists, and by
its meaning when the words differ. The model sees the passages fenced and numbered, each first
read by the injection guard (a flagged one is withheld from the model). Its answer is held back
until it cites a retrieved passage: an answer that ends citing none, or no answer at all
(every deployment down), is replaced by an extractive answer quoting the best sentences,
marked degraded, so no uncited model text is ever delivered. A question the passages do not
answer gets :data:`NOT_FOUND_ANSWER`, never an invention.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

import numpy as np
from opentelemetry.trace import NoOpTracer, Tracer

from ai_orchestration.insights import (
    NOT_FOUND_ANSWER,
    RRF_K,
    Citation,
    CitationTracker,
    Passage,
    PassageEmbedder,
    build_answer_prompt,
    extractive_answer,
    is_not_found,
    reciprocal_rank_fusion,
)
from ai_orchestration.llm import (
    CallContext,
    ChatMessage,
    Completion,
    CompletionRequest,
    InjectionGuard,
    LlmGateway,
    PromptInjectionError,
    TokenDelta,
)

__all__ = ["AnswerEnd", "AskSettings", "CustomerAnswers", "PassageIndex", "RankedHit", "Retriever"]

DEFAULT_SOURCES: Final[int] = 5


class RankedHit(Protocol):
    """A passage found by one retriever, with that retriever's score."""

    @property
    def passage_id(self) -> int:
        """The stored passage."""

    @property
    def score(self) -> float:
        """Higher is better; cosine similarity for vectors."""


class PassageIndex(Protocol):
    """Search over a customer's passages (``storage.InteractionRepository``)."""

    async def search_text(
        self, tenant_id: str, customer_id: str, question: str, limit: int
    ) -> Sequence[RankedHit]:
        """Passages matching the question's words, best first."""

    async def search_vector(
        self, tenant_id: str, customer_id: str, vector: np.ndarray, limit: int
    ) -> Sequence[RankedHit]:
        """Passages nearest to the vector, best first."""

    async def passages(self, tenant_id: str, passage_ids: Sequence[int]) -> list[Passage]:
        """The passages with these ids, in the order asked."""


@dataclass(frozen=True, slots=True)
class AskSettings:
    """How answers are retrieved and written."""

    model: str = "fast"
    """Logical model of the gateway that writes answers."""
    candidates: int = 30
    """Passages each retriever proposes before fusion."""
    max_tokens: int = 400
    """Longest answer."""


class Retriever:
    """Hybrid retrieval over one customer's passages."""

    def __init__(
        self,
        *,
        index: PassageIndex,
        embedder: PassageEmbedder,
        candidates: int = 30,
        tracer: Tracer | None = None,
    ) -> None:
        """``tracer``: a span per retrieval (``insight.retrieve``); none by default."""
        self._index = index
        self._embedder = embedder
        self._candidates = candidates
        self._tracer = tracer or NoOpTracer()

    async def retrieve(
        self, tenant_id: str, customer_id: str, question: str, limit: int
    ) -> list[Passage]:
        """The best passage of each of the ``limit`` best interactions, best first; ``score``
        in 0..1 (the cosine similarity where the vector ranking found the passage, else its
        fused rank's share). One passage per interaction, so that ``limit`` sources are
        ``limit`` different interactions, not overlapping pieces of one."""
        attributes = {"crm.tenant_id": tenant_id, "crm.customer_id": customer_id}
        with self._tracer.start_as_current_span("insight.retrieve", attributes=attributes) as span:
            found = await self._retrieve(tenant_id, customer_id, question, limit)
            if span.is_recording():
                span.set_attributes(
                    {
                        "crm.retrieval.limit": limit,
                        "crm.retrieval.candidates": self._candidates,
                        "crm.retrieval.passages": len(found),
                    }
                )
            return found

    async def _retrieve(
        self, tenant_id: str, customer_id: str, question: str, limit: int
    ) -> list[Passage]:
        vector = await asyncio.to_thread(self._embedder.embed_query, question)
        words, meaning = await asyncio.gather(
            self._index.search_text(tenant_id, customer_id, question, self._candidates),
            self._index.search_vector(tenant_id, customer_id, vector, self._candidates),
        )
        fused = reciprocal_rank_fusion(
            [[h.passage_id for h in words], [h.passage_id for h in meaning]]
        )
        similarity = {h.passage_id: h.score for h in meaning}
        best_possible = 2.0 / (RRF_K + 1)
        found = await self._index.passages(tenant_id, [pid for pid, _ in fused])
        by_id = {p.passage_id: p for p in found}
        chosen: dict[str, Passage] = {}
        for pid, fused_score in fused:
            passage = by_id.get(pid)
            if passage is None or passage.interaction_id in chosen:
                continue
            score = similarity.get(pid, min(1.0, fused_score / best_possible))
            chosen[passage.interaction_id] = replace(passage, score=max(0.0, min(1.0, score)))
            if len(chosen) == limit:
                break
        return list(chosen.values())


@dataclass(frozen=True, slots=True)
class AnswerEnd:
    """What follows the answer's text: its evidence and what writing it cost."""

    citations: tuple[Citation, ...]
    """The cited passages, most relevant first (empty for a not-found answer)."""
    completion: Completion | None
    """The model's call (usage, model); ``None`` when no model was asked."""
    degraded: bool
    """The text is the extractive fallback (or not-found) because no model gave a cited one."""


class CustomerAnswers:
    """Answers questions about one customer from its passages, with citations."""

    def __init__(
        self,
        *,
        retriever: Retriever,
        gateway: LlmGateway,
        guard: InjectionGuard,
        settings: AskSettings = AskSettings(),
    ) -> None:
        self._retriever = retriever
        self._gateway = gateway
        self._guard = guard
        self._settings = settings

    async def ask(
        self, tenant_id: str, customer_id: str, question: str, *, sources: int = DEFAULT_SOURCES
    ) -> AsyncIterator[str | AnswerEnd]:
        """Text deltas, then one :class:`AnswerEnd`."""
        passages = await self._retriever.retrieve(tenant_id, customer_id, question, sources)
        if not passages:
            yield NOT_FOUND_ANSWER
            yield AnswerEnd((), None, degraded=False)
            return
        shown = await self._unflagged(tenant_id, passages)
        tracker = CitationTracker(len(shown))
        held: list[str] = []
        completion: Completion | None = None
        if shown:
            async for item in self._gateway.stream(self._request(tenant_id, question, shown)):
                if isinstance(item, TokenDelta):
                    if completion is None and item.text:
                        safe = tracker.feed(item.text)
                        if tracker.cited:
                            # Cited: what was held and everything after goes out as it comes.
                            yield "".join(held) + safe
                            held.clear()
                        else:
                            held.append(safe)
                elif isinstance(item, Completion):
                    completion = item
            rest = tracker.finish()
            if tracker.cited and completion is not None and not completion.degraded:
                yield "".join(held) + rest
                yield AnswerEnd(_evidence(shown, tracker.cited), completion, degraded=False)
                return
            if (
                completion is not None
                and not completion.degraded
                and is_not_found("".join(held) + rest)
            ):
                yield NOT_FOUND_ANSWER
                yield AnswerEnd((), completion, degraded=False)
                return
        async for piece in self._extractive(question, passages, completion):
            yield piece

    async def _extractive(
        self, question: str, passages: list[Passage], completion: Completion | None
    ) -> AsyncIterator[str | AnswerEnd]:
        answer = extractive_answer(question, passages)
        if answer is None:
            yield NOT_FOUND_ANSWER
            yield AnswerEnd((), completion, degraded=True)
            return
        yield answer.text
        evidence = tuple(
            Citation(
                interaction_id=passages[q.passage - 1].interaction_id,
                quote=q.text,
                relevance=passages[q.passage - 1].score,
                start=q.start,
                end=q.end,
            )
            for q in answer.quotes
        )
        yield AnswerEnd(_most_relevant_first(evidence), completion, degraded=True)

    async def _unflagged(self, tenant_id: str, passages: list[Passage]) -> list[Passage]:
        verdicts = await asyncio.gather(*(self._flagged(tenant_id, p.text) for p in passages))
        return [p for p, flagged in zip(passages, verdicts, strict=True) if not flagged]

    async def _flagged(self, tenant_id: str, text: str) -> bool:
        try:
            verdict = await self._guard.check(tenant_id, text, field="interaction.body")
        except PromptInjectionError:
            return True
        return verdict.flagged

    def _request(self, tenant_id: str, question: str, passages: list[Passage]) -> CompletionRequest:
        system, user = build_answer_prompt(question, passages)
        return CompletionRequest(
            model=self._settings.model,
            messages=(ChatMessage("system", system), ChatMessage("user", user)),
            context=CallContext(tenant_id=tenant_id, step="ask_customer"),
            max_tokens=self._settings.max_tokens,
            # The prompt holds the customer's text: an answer is never cached, so erasing the
            # customer leaves no cache entry built from it.
            use_cache=False,
            fallback_text=NOT_FOUND_ANSWER,
        )


def _evidence(passages: list[Passage], cited: Sequence[int]) -> tuple[Citation, ...]:
    evidence = tuple(
        Citation(
            interaction_id=passages[n - 1].interaction_id,
            quote=passages[n - 1].text,
            relevance=passages[n - 1].score,
            start=passages[n - 1].start,
            end=passages[n - 1].end,
        )
        for n in cited
    )
    return _most_relevant_first(evidence)


def _most_relevant_first(evidence: tuple[Citation, ...]) -> tuple[Citation, ...]:
    return tuple(sorted(evidence, key=lambda e: -e.relevance))
