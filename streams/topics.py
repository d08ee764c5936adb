"""The topic registry: every topic's name, partitions, key, cleanup policy and dead-letter pair.

Agents and tools take topic names from here, never from string literals. All topics,
Faust changelogs included, are created up front with these partition counts: a broker
that auto-creates a changelog with another count makes Faust tables fail to start.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.settings import Settings

DEAD_LETTER_SUFFIX = ".dead-letter"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One Kafka topic as the system expects it."""

    name: str
    partitions: int
    key: str
    cleanup_policy: str = "delete"
    dead_letter: str | None = None
    internal: bool = False
    doc: str = ""

    @property
    def config(self) -> dict[str, str]:
        """Topic-level configuration passed to the admin client."""
        return {"cleanup.policy": self.cleanup_policy}


@dataclass(frozen=True, slots=True)
class Topics:
    """Names of the topics one version of the application reads and writes."""

    interactions: TopicSpec
    impressions: TopicSpec
    catalog: TopicSpec
    recs_out: TopicSpec
    item_deltas: TopicSpec
    trending_partials: TopicSpec
    changelogs: tuple[TopicSpec, ...]
    alerts: TopicSpec
    outcomes: TopicSpec
    item_vectors: TopicSpec

    def sources(self) -> tuple[TopicSpec, ...]:
        """Topics that producers write to; each has a paired dead-letter topic."""
        return (self.interactions, self.impressions, self.catalog)

    def dead_letters(self) -> tuple[TopicSpec, ...]:
        """The dead-letter topic paired with each source topic."""
        return tuple(
            TopicSpec(
                name=s.dead_letter,
                partitions=s.partitions,
                key="original key",
                doc=f"rejected records of {s.name}: envelope with reason and original bytes",
            )
            for s in self.sources()
            if s.dead_letter
        )

    def all(self) -> tuple[TopicSpec, ...]:
        """Every topic, to be created before any worker starts."""
        return (
            *self.sources(),
            *self.dead_letters(),
            self.recs_out,
            self.alerts,
            self.item_deltas,
            self.trending_partials,
            self.outcomes,
            self.item_vectors,
            *self.changelogs,
        )


# Faust names changelog topics "<app id>-<table name>-changelog".
TABLE_USERS = "users"
TABLE_ITEMS = "items"
TABLE_ITEM_PARTS = "item_parts"
TABLE_ITEM_TOPS = "item_tops"  # "<partition>/<category>" -> streams.trending.Tops
TABLE_CATALOG = "catalog"
TABLE_TRENDING = "trending"
TABLE_ATTRIBUTION = "attribution"
TABLE_EXPERIMENTS = "experiments"


def changelog_name(app_id: str, table: str) -> str:
    """Name of the changelog topic Faust uses for ``table``."""
    return f"{app_id}-{table}-changelog"


def build_topics(settings: Settings) -> Topics:
    """The topic registry for the version named in ``settings``."""
    n = settings.partitions
    app = settings.app_id
    pre = settings.topic_prefix

    def source(name: str, key: str, policy: str, doc: str) -> TopicSpec:
        name = pre + name
        return TopicSpec(name, n, key, policy, dead_letter=name + DEAD_LETTER_SUFFIX, doc=doc)

    def changelog(table: str, partitions: int) -> TopicSpec:
        return TopicSpec(
            changelog_name(app, table),
            partitions,
            "table key",
            "compact",
            internal=True,
            doc=f"changelog of the {table} table",
        )

    return Topics(
        interactions=source("interactions", "user_id", "delete", "clicks, views, carts, purchases"),
        impressions=source("impressions", "user_id", "delete", "lists shown to users"),
        catalog=source("catalog", "item_id", "compact", "item metadata, latest per item"),
        recs_out=TopicSpec(pre + "recs-out", n, "user_id", doc="every published user list"),
        item_deltas=TopicSpec(
            f"{app}-item-deltas",
            n,
            "item partition",
            internal=True,
            doc="batched item-side updates, one message per item partition per ingest batch",
        ),
        trending_partials=TopicSpec(
            f"{app}-trending-partials",
            1,
            "item partition",
            internal=True,
            doc="per-partition top items, merged into global and per-category trending",
        ),
        changelogs=(
            changelog(TABLE_USERS, n),
            changelog(TABLE_ITEMS, n),
            changelog(TABLE_ITEM_PARTS, n),
            changelog(TABLE_ITEM_TOPS, n),
            changelog(TABLE_CATALOG, n),
            changelog(TABLE_TRENDING, 1),
            changelog(TABLE_ATTRIBUTION, n),
            changelog(TABLE_EXPERIMENTS, 1),
        ),
        alerts=TopicSpec(
            pre + "alerts", 1, "detector", doc="drift alerts: {ts_ms, detector, variant, message}"
        ),
        outcomes=TopicSpec(
            f"{app}-experiment-outcomes",
            1,
            "user partition",
            internal=True,
            doc="per-partition attribution records (impressions, clicks), merged into the A/B "
            "report and the drift detectors",
        ),
        item_vectors=TopicSpec(
            f"{app}-item-vectors",
            n,
            "item_id",
            "compact",
            internal=True,
            doc="latest vector per item (float32 little-endian), empty value = tombstone; "
            "every worker replays all of it into its own HNSW replica",
        ),
    )
