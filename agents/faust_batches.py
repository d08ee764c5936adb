"""Records of the producer-written topics reach their agents in batches, one Faust message each.

Faust hands every record through its fetch loop, the conductor, a channel queue and a
stream, and acknowledges each one: about 130 µs per record on this project's machines
(the no-op agent), a third of a worker's time per interaction. For the topics named
here, the records of one partition in one fetch become Faust messages of up to
``chunk`` records each. Such a message's value is a :class:`Records` tuple of the
aiokafka records, in offset order; its offset is the last record's. Handlers read the
records through :func:`records_of`.

Offsets stay exact:

- Faust records a "gap" whenever a message's offset jumps past the last one read, and
  counts a gap as acknowledged once anything above it is. A gap left by a batch dropped
  at a seek would then, after a re-fetch cut differently, acknowledge records not yet
  processed. So the fetch loop is shown a batch message as if it followed the last
  record read (its read offset is set to the message's offset - 1): no gap is recorded.
- Acknowledging a batch message acknowledges every offset it covers: from the offset
  after the batch handed on before it on that partition (or, first after a seek, from
  where the seek put the partition) up to its last record. The holes a compacted or
  transactional log leaves between batches are covered, so they do not stall commits.
- Only within one seek epoch (``agents.faust_seek``). A batch handed on before a seek
  and acknowledged after it (Faust skips such a message and acknowledges it, or a broker
  that keeps the group generation lets it through) acknowledges its last offset only, as
  Faust alone would: the records before it are being read again and must not be
  counted done on its word.

A batch message is acknowledged after its handler returned, so a crash redoes it whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.types.tuples import ack_lock

from agents.faust_patch import replace
from agents.faust_seek import epoch_of

_SETTING = "_kapparec_batched_topics"  # attribute of the Faust app: (topics, chunk)
_FOLLOWS = "_kapparec_batch_follows"  # consumer attribute: tp -> (epoch, offset after last batch)


class Records(tuple):  # type: ignore[type-arg]
    """The value of a batch message: aiokafka ``ConsumerRecord`` objects in offset order.

    Stamped when handed on: the seek ``epoch`` it was read in and the offset its
    acknowledgement ``covers_from``.
    """

    epoch: int = 0
    covers_from: int | None = None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """What Faust's message factory reads from an aiokafka record, for a batch of them."""

    topic: str
    partition: int
    offset: int  # the last record's
    timestamp: int | None
    timestamp_type: int
    key: bytes | None
    value: Records
    checksum: None
    serialized_key_size: int
    serialized_value_size: int
    headers: tuple[Any, ...]

    @classmethod
    def of(cls, records: Records) -> BatchRecord:
        last = records[-1]
        return cls(
            topic=last.topic,
            partition=last.partition,
            offset=last.offset,
            timestamp=last.timestamp,
            timestamp_type=last.timestamp_type,
            key=None,
            value=records,
            checksum=None,
            serialized_key_size=0,
            serialized_value_size=sum(max(r.serialized_value_size, 0) for r in records),
            headers=(),
        )


def coalesce(
    records: Mapping[Any, list[Any]], topics: Collection[str], chunk: int
) -> dict[Any, list[Any]]:
    """``records`` (partition -> fetched records) with those of ``topics`` in batches."""
    out: dict[Any, list[Any]] = {}
    for tp, recs in records.items():
        if tp.topic in topics and recs:
            out[tp] = [
                BatchRecord.of(Records(recs[i : i + chunk])) for i in range(0, len(recs), chunk)
            ]
        else:
            out[tp] = recs
    return out


def records_of(events: Iterable[Any]) -> list[Any]:
    """The records of a batch of Faust events, batch messages unpacked, in order.

    Each has ``topic``, ``partition``, ``offset``, ``key``, ``value`` and ``headers``.
    """
    out: list[Any] = []
    for event in events:
        msg = event.message
        if isinstance(msg.value, Records):
            out.extend(msg.value)
        else:
            out.append(msg)
    return out


def header_pairs(headers: Any) -> tuple[tuple[str, bytes | None], ...]:
    """A record's headers as ``(key, value)`` pairs, in order: aiokafka gives a sequence
    of pairs, Faust's message a list or a mapping; a value may be null."""
    if not headers:
        return ()
    pairs = headers.items() if hasattr(headers, "items") else headers
    return tuple((str(k), None if v is None else bytes(v)) for k, v in pairs)


def covers_from(first: int, follows: int | None) -> int:
    """Where the acknowledgement of a batch starting at ``first`` starts: at ``follows``
    (the offset after what was handed on before it, or a seek's position) when known
    and not beyond ``first``."""
    return follows if follows is not None and follows <= first else first


def _batching(
    wait_next_records: Callable[[Any, float], Awaitable[tuple[Any, Any]]],
    getmany: Callable[[Any, float], AsyncIterator[tuple[Any, Any]]],
    ack: Callable[[Any, Any], bool],
) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    async def _wait_next_records(self: Any, timeout: float) -> tuple[Any, Any]:
        records, active = await wait_next_records(self, timeout)
        setting = getattr(self.app, _SETTING, None)
        if records and setting is not None:
            records = coalesce(records, *setting)
        return records, active

    async def fetch(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        read_offset = self._read_offset
        follows: dict[Any, tuple[int, int]] = self.__dict__.setdefault(_FOLLOWS, {})
        async for tp, message in getmany(self, timeout):
            records = message.value
            if isinstance(records, Records):
                epoch = epoch_of(self)
                seen = follows.get(tp)
                # Within the epoch: right after the last batch. First after a seek: the
                # read offset the seek set, which is the position it put the partition at.
                after = seen[1] if seen is not None and seen[0] == epoch else read_offset[tp]
                records.epoch = epoch
                records.covers_from = covers_from(records[0].offset, after)
                follows[tp] = (epoch, message.offset + 1)
                r = read_offset[tp]
                if r is None or message.offset >= r:
                    read_offset[tp] = message.offset - 1  # no gap: see the module doc
            yield tp, message

    def acknowledge(self: Any, message: Any) -> bool:
        with ack_lock:
            done = ack(self, message)
            records = message.value
            if (
                message.acked
                and isinstance(records, Records)
                and records.covers_from is not None
                and records.epoch == epoch_of(self)
            ):
                # Also when Faust had the last offset already (a re-cut batch ending where
                # an older one did): the range is what this batch did.
                tp = message.tp
                index, acked = self._acked_index[tp], self._acked[tp]
                committed = self._committed_offset[tp]
                for offset in range(records.covers_from, message.offset + 1):
                    if offset not in index and (committed is None or offset >= committed):
                        index.add(offset)
                        acked.append(offset)
            return done

    return _wait_next_records, fetch, acknowledge


def install(app: Any, topics: Collection[str], chunk: int) -> None:
    """Deliver the records of ``topics`` to ``app``'s agents in batches of ``chunk``."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    setattr(app, _SETTING, (frozenset(topics), chunk))
    replace(faust_consumer.Consumer, _batching, "_wait_next_records", "getmany", "ack")
