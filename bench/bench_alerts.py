"""Alerts (issue #18): from the ingest ack to the alert on a WatchAlerts stream, and how right
the rules are.

- **Latency**: the real server in-process (SQLite, no Redis: one replica), ``--watchers``
  WatchAlerts streams (1 and 100 by default) following the tenant's log, and one client that
  ingests ``--alerts`` alert-raising e-mails (each of another customer, so no cooldown holds
  one back) at a steady ``--rate`` per second, one stream per e-mail. For each alert and
  watcher: the time from the ingest's response to the alert's arrival on that stream (negative
  when the alert arrives before the response does). Prints p50 / p99 / max. Goal: p99 <= 100 ms
  with 100 watchers, no LLM involved. Baseline in the same run: the round trip of an ingest that
  raises nothing (the floor any push must add to).
- **Precision and recall** of each rule on the labelled alert cases
  (:func:`generate_alert_cases`, seeded). Goal: >= 0.9 each, per kind.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Final

import grpc.aio
from _serving import serving, token
from crm.ai.v1 import insight_pb2, insight_pb2_grpc

from ai_orchestration.insights import generate_alert_cases, score_alert_cases

TENANT: Final = "bench"
ANGRY: Final = (
    "This is unacceptable. We have waited three weeks and we are cancelling the contract at the "
    "end of the month."
)
CALM: Final = "Thanks, the new dashboard works well for the team."


def _interaction(interaction_id: str, customer: str, body: str) -> insight_pb2.Interaction:
    message = insight_pb2.Interaction(
        interaction_id=interaction_id,
        customer_id=customer,
        kind=insight_pb2.Interaction.KIND_EMAIL,
        direction=insight_pb2.Interaction.DIRECTION_INBOUND,
        subject="Our contract",
        body=body,
    )
    message.occur_time.GetCurrentTime()
    return message


async def _one(
    message: insight_pb2.Interaction,
) -> AsyncIterator[insight_pb2.IngestInteractionsRequest]:
    yield insight_pb2.IngestInteractionsRequest(interaction=message)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def latency(watchers: int, alerts: int, rate: float) -> float:
    """Prints the ack-to-alert figures with ``watchers`` streams; returns the p99."""
    async with serving("bench-alerts-") as server:
        md = (("authorization", f"Bearer {token(TENANT)}"),)
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = insight_pb2_grpc.InsightServiceStub(channel)
            for n in range(20):  # warm up: models, the first transactions, the rules
                await stub.IngestInteractions(
                    _one(_interaction(f"w-{n}", f"w-{n}", CALM)), metadata=md
                )
            arrivals: dict[str, list[float]] = {}
            everything = asyncio.Event()
            target = [0]  # deliveries that make "everything", known once every e-mail is in

            async def watch() -> None:
                call = stub.WatchAlerts(insight_pb2.WatchAlertsRequest(), metadata=md)
                async for alert in call:
                    arrivals.setdefault(alert.evidence[0].interaction_id, []).append(
                        time.perf_counter()
                    )
                    if target[0] and sum(map(len, arrivals.values())) >= target[0]:
                        everything.set()

            tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
            await asyncio.sleep(1.0)  # every watcher follows the log
            acks: dict[str, float] = {}
            baseline: list[float] = []
            raised = 0
            interval = 1.0 / rate
            started = time.perf_counter()
            for n in range(alerts):
                await asyncio.sleep(max(0.0, started + n * interval - time.perf_counter()))
                calm_sent = time.perf_counter()
                await stub.IngestInteractions(
                    _one(_interaction(f"c-{n}", f"calm-{n}", CALM)), metadata=md
                )
                baseline.append(time.perf_counter() - calm_sent)
                reply = await stub.IngestInteractions(
                    _one(_interaction(f"a-{n}", f"cust-{n}", ANGRY)), metadata=md
                )
                acks[f"a-{n}"] = time.perf_counter()
                assert reply.alerts_raised >= 1, reply
                raised += reply.alerts_raised
            target[0] = raised * watchers
            if sum(map(len, arrivals.values())) >= target[0]:
                everything.set()
            try:
                await asyncio.wait_for(everything.wait(), 30)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    delays = [t - acks[key] for key, times in arrivals.items() if key in acks for t in times]
    p99 = _p99(delays)
    print(
        f"{watchers:3} watcher(s), {alerts} e-mails at {rate:g}/s raising {raised} alerts, "
        f"{len(delays)} of {raised * watchers} deliveries: "
        f"ack->alert p50 {_ms(statistics.median(delays))}  p99 {_ms(p99)}  "
        f"max {_ms(max(delays))}   (baseline: ingest round trip raising nothing, "
        f"p50 {_ms(statistics.median(baseline))})"
    )
    return p99


def accuracy() -> bool:
    """Prints precision and recall per kind; True when every one is at least 0.9."""
    cases = generate_alert_cases()
    met = True
    print(f"labelled alert cases: {len(cases)}")
    for kind, score in score_alert_cases(cases).items():
        ok = score.precision >= 0.9 and score.recall >= 0.9
        met &= ok
        print(
            f"  {kind.value:20} precision {score.precision:.3f}  recall {score.recall:.3f}  "
            f"(tp {score.true_positives}, fp {score.false_positives}, "
            f"fn {score.false_negatives})  {'met' if ok else 'NOT met'}"
        )
    return met


async def main(options: argparse.Namespace) -> None:
    print("== ack -> alert latency (no LLM)")
    p99 = 0.0
    for count in options.watchers:
        p99 = await latency(count, options.alerts, options.rate)
    goal = "met" if p99 <= 0.1 else "NOT met"
    print(f"goal: p99 <= 100 ms with {options.watchers[-1]} watchers: {goal}")
    print("== rules on the labelled cases")
    met = accuracy()
    print(f"goal: precision and recall >= 0.9 per kind: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--alerts", type=int, default=1000, help="alert-raising e-mails")
    parser.add_argument("--rate", type=float, default=20.0, help="e-mails per second")
    asyncio.run(main(parser.parse_args()))
