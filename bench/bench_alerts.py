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
import contextlib
import functools
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc
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


def _more(published: list[float], sent: int) -> bool:
    return len(published) > sent


async def transport_floor(watchers: int, alerts: int, rate: float) -> float:
    """The same deliveries from a bare grpc.aio server in this process that only pushes
    pre-serialised alerts to its streams as they are published (no database, no rules, no
    auth): what ``watchers`` client streams and their server side cost on this machine.
    Prints p50 / p99 from publication to arrival; returns the p99."""
    encoded = insight_pb2.Alert(
        alert_id="x",
        sequence=1,
        customer_id="cust",
        message="Alert.",
        kind=insight_pb2.Alert.KIND_NEGATIVE_SENTIMENT,
        severity=insight_pb2.SEVERITY_HIGH,
    ).SerializeToString()
    published: list[float] = []
    new = asyncio.Condition()

    async def push(request: bytes, context: object) -> AsyncIterator[bytes]:
        sent = 0
        while True:
            async with new:
                await new.wait_for(functools.partial(_more, published, sent))
            while sent < len(published):
                sent += 1
                yield encoded

    handler = grpc.method_handlers_generic_handler(
        "bench.Push", {"Watch": grpc.unary_stream_rpc_method_handler(push)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    delays: list[float] = []
    all_in = asyncio.Event()
    per_alert = 3  # an angry e-mail of the latency run raises three
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch: Any = channel.unary_stream("/bench.Push/Watch")

            async def follow() -> None:
                got = 0
                async for _ in watch(b""):
                    delays.append(time.perf_counter() - published[got])
                    got += 1
                    if len(delays) >= alerts * per_alert * watchers:
                        all_in.set()

            tasks = [asyncio.create_task(follow()) for _ in range(watchers)]
            await asyncio.sleep(1.0)
            started = time.perf_counter()
            for n in range(alerts):
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                async with new:
                    now = time.perf_counter()
                    published.extend([now] * per_alert)
                    new.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), 30)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await server.stop(None)
    p99 = _p99(delays)
    print(
        f"{watchers:3} watcher(s), floor (bare grpc.aio push of the same deliveries): "
        f"p50 {_ms(statistics.median(delays))}  p99 {_ms(p99)}"
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
    p99 = floor = 0.0
    for count in options.watchers:
        p99 = await latency(count, options.alerts, options.rate)
        floor = await transport_floor(count, options.alerts, options.rate)
    goal = "met" if p99 <= 0.1 else "NOT met"
    print(
        f"goal: p99 <= 100 ms with {options.watchers[-1]} watchers: {goal} "
        f"(ours {_ms(p99)}, floor {_ms(floor)}, ratio {p99 / floor:.2f})"
    )
    print("== rules on the labelled cases")
    met = accuracy()
    print(f"goal: precision and recall >= 0.9 per kind: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--alerts", type=int, default=1000, help="alert-raising e-mails")
    parser.add_argument("--rate", type=float, default=20.0, help="e-mails per second")
    asyncio.run(main(parser.parse_args()))
