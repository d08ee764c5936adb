"""Experiment agents: attribute clicks to shown lists, fold global totals, report and alert.

``attribute_outcomes`` runs on every user partition of ``impressions`` and
``interactions`` (co-partitioned by user) and sends what it joined to the one-partition
outcomes topic. ``track_experiments``, on that topic, folds the records of all
partitions into the totals, feeds the drift detectors, pushes alerts, and writes the
report to Redis at most every ``KAPPAREC_METRICS_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from faust.serializers import codecs

from agents.codecs import ORJSON, StateCodec
from agents.control import refresh_request
from agents.dead_letters import DeadLetters
from agents.faust_batches import records_of
from agents.publisher import Publisher
from agents.record_checks import check_not_ahead, check_partition
from agents.tables import entries, put_all
from schemas.codec import check_key, decode_impression, decode_interaction
from schemas.errors import DecodeError
from schemas.events import Impression, Interaction
from streams.attribution import IMPRESSIONS, INTERACTIONS, JoinState
from streams.drift import Alert, DriftMonitor
from streams.experiment_report import Group, Totals, encode_messages
from streams.experiments import from_settings
from streams.settings import Settings
from streams.topics import TABLE_ATTRIBUTION, TABLE_EXPERIMENTS, Topics

log = logging.getLogger(__name__)
AGENT = "attribute_outcomes"
TOTALS = "kapparec-totals"
TOTALS_KEY = "totals"
ALERTS_KEPT = 100
# Outcomes messages are split below this (half the producers' request limit).
MAX_OUTCOMES_MESSAGE_BYTES = 500_000


@dataclass
class AttributeOutcomes:
    """Handles a batch of raw impressions and interactions of any of this worker's partitions.

    A partition's join state lives in memory; its table holds it as a header (key
    ``<p>``) and one record per user with lists open or interactions waiting (key
    ``<p>/<user>``), written as they change. It is read back from the table after a
    rebalance.
    """

    settings: Settings
    impressions_topic: str
    states: Any  # faust Table[str, dict]: headers and user records (see above)
    outcomes: faust.TopicT
    dead_letters: DeadLetters
    rebalances: Callable[[], int] = lambda: 0
    live: dict[int, JoinState] = field(default_factory=dict)
    _generation: int = field(default=-1, init=False)
    # The table's user records by partition, gathered in one pass after a rebalance.
    _saved: dict[str, list[Any]] | None = field(default=None, init=False)

    def _state(self, p: int, touched: dict[int, JoinState]) -> JoinState:
        if p not in touched:
            generation = self.rebalances()
            if generation != self._generation:  # partitions may have come or gone
                self.live.clear()
                self._saved = None
                self._generation = generation
            state = self.live.get(p)
            if state is None:
                state = self.live[p] = self._load(p)
            # The window is a setting: a restored state takes the one configured now.
            state.window_ms = int(self.settings.ab_window_s * 1000)
            touched[p] = state
        return touched[p]

    def _load(self, p: int) -> JoinState:
        header = self.states.get(str(p))
        if header is None:
            return JoinState(int(self.settings.ab_window_s * 1000))
        if self._saved is None:
            # Partitions not loaded since the rebalance have had no writes here since, so
            # one pass serves them all.
            self._saved = {}
            for key, value in entries(self.states).items():
                part, sep, _ = key.partition("/")
                if sep:
                    self._saved.setdefault(part, []).append(value)
        return JoinState.from_records(header, self._saved.pop(str(p), []))

    def _writes(self, touched: dict[int, JoinState]) -> list[tuple[Any, int, str, Any]]:
        writes: list[tuple[Any, int, str, Any]] = []
        for p, st in touched.items():
            writes.append((self.states, p, str(p), st.header()))
            for user, record in st.take_dirty().items():
                writes.append((self.states, p, f"{p}/{user}", record))
        return writes

    async def handle(self, events: Sequence[Any]) -> None:
        """Join a batch; the records reach the outcomes topic before the state is saved."""
        touched: dict[int, JoinState] = {}
        groups: dict[int, list[Group]] = {}
        rejected: list[tuple[Any, DecodeError]] = []
        for msg in records_of(events):
            is_imp = msg.topic == self.impressions_topic
            if not is_imp and refresh_request(msg) is not None:
                continue
            state = self._state(msg.partition, touched)
            kind = IMPRESSIONS if is_imp else INTERACTIONS
            if not state.fresh(kind, msg.offset):
                continue
            try:
                records = self._apply(state, is_imp, msg)
            except DecodeError as exc:
                # Bad interactions are dead-lettered by ingest; impressions have no other reader.
                if is_imp:
                    rejected.append((msg, exc))
                continue
            if records:
                groups.setdefault(msg.partition, []).append([kind, msg.offset, records])
        await self.dead_letters.send_all(rejected, AGENT)
        # Records before state: after a crash in between, the batch is redone and the
        # totals drop the groups whose offsets they already applied.
        sends = [
            await self.outcomes.send(key=str(p).encode(), value=raw, partition=0)
            for p, g in groups.items()
            for raw in encode_messages(p, g, MAX_OUTCOMES_MESSAGE_BYTES)
        ]
        await asyncio.gather(*sends)
        await put_all(self._writes(touched))

    def _apply(self, state: JoinState, is_imp: bool, msg: Any) -> list[Any]:
        s = self.settings
        event: Impression | Interaction = (
            decode_impression(msg.value, s.max_event_bytes)
            if is_imp
            else decode_interaction(msg.value, s.max_event_bytes)
        )
        # The checks ingest makes of interactions: the join is per user partition, and
        # an impression dated far ahead would keep every later list from closing.
        check_key(msg.key, event.user_id, "user_id")
        check_partition(msg.partition, event.user_id, s.partitions)
        check_not_ahead(event.ts, s.max_future_s)
        if isinstance(event, Impression):
            return state.impression(event)
        return state.interaction(event)


@dataclass
class TrackExperiments:
    """Folds outcomes of all partitions; writes the report and drift alerts."""

    settings: Settings
    totals: Any  # faust Table[str, Totals], one partition
    alerts_topic: faust.TopicT
    publisher: Publisher
    variants: tuple[str, ...]
    monitor: DriftMonitor = field(default_factory=DriftMonitor)
    dirty: bool = False
    last_report: float = 0.0
    alerts_sent: int = 0

    async def handle(self, events: Sequence[Any]) -> None:
        """Fold a batch of outcomes messages; alerts are durable before the batch is acked."""
        totals = self.totals.get(TOTALS_KEY) or Totals()
        alerts: list[Alert] = []
        for event in events:
            for detector, key, value, ts in totals.apply_message(event.message.value):
                alert = self.monitor.observe(detector, key, value, ts)
                if alert is not None:
                    log.warning("drift: %s", alert.message)
                    alerts.append(alert)
        await self._alert(alerts)
        await put_all([(self.totals, 0, TOTALS_KEY, totals)])
        self.dirty = True
        if time.monotonic() - self.last_report >= self.settings.metrics_interval_s:
            await self.report()

    async def report(self) -> bool:
        """Write the report if anything changed since the last one."""
        totals = self.totals.get(TOTALS_KEY)
        if not self.dirty or totals is None:
            return False
        s = self.settings
        doc = totals.report(self.variants, s.ab_test, s.ab_alpha, int(time.time() * 1000))
        key = self.publisher.keys.metrics_ab()
        # Cleared before the write: a batch folded while it waits marks the report dirty
        # again, and the next tick writes it (cleared after, that batch would be lost
        # from the report until another came).
        self.dirty = False
        try:
            await self.publisher.write([(key, orjson.dumps(doc), s.version_ttl_s)])
        except BaseException:
            self.dirty = True
            raise
        self.last_report = time.monotonic()
        return True

    async def _alert(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        payloads = [orjson.dumps(a.to_dict()) for a in alerts]
        sends = [
            await self.alerts_topic.send(key=a.detector.encode(), value=v)
            for a, v in zip(alerts, payloads, strict=True)
        ]
        await asyncio.gather(*sends)
        key = self.publisher.keys.alerts()
        async with self.publisher.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, *payloads)
            pipe.ltrim(key, 0, ALERTS_KEPT - 1)
            pipe.expire(key, self.settings.version_ttl_s)
            await pipe.execute()
        self.alerts_sent += len(alerts)


def register_codecs() -> None:
    """Table value codecs of the experiment state (idempotent)."""
    codecs.register(TOTALS, StateCodec(Totals))


@dataclass
class Experiments:
    """The experiment handlers wired into an app."""

    attribute: AttributeOutcomes
    track: TrackExperiments


def wire_experiments(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    publisher: Publisher,
    dead_letters: DeadLetters,
    table: Callable[..., Any],
) -> Experiments:
    """Register the two experiment agents and the report timer on ``app``."""
    # Imported here: agents.app imports this module to call this function.
    from agents.app import _batch_agent, _guard, _raw_topic, source_messages

    register_codecs()
    outcomes = _raw_topic(app, topics.outcomes.name)
    attribute = AttributeOutcomes(
        settings,
        topics.impressions.name,
        table(TABLE_ATTRIBUTION, ORJSON),
        outcomes,
        dead_letters,
        rebalances=lambda: app.rebalancing_count,
    )
    track = TrackExperiments(
        settings,
        table(TABLE_EXPERIMENTS, TOTALS, partitions=1),
        _raw_topic(app, topics.alerts.name),
        publisher,
        from_settings(settings).variants,
        DriftMonitor(settings.drift_delta),
    )
    joined = app.topic(
        topics.impressions.name,
        topics.interactions.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    within = settings.batch_within_s
    _batch_agent(app, joined, AGENT, attribute.handle, source_messages(settings), within)
    _batch_agent(app, outcomes, "track_experiments", track.handle, 256, within)

    @app.timer(settings.metrics_interval_s)
    async def report_experiments() -> None:
        await _guard(app, "report_experiments", track.report)

    return Experiments(attribute, track)
