"""The topic registry: dead-letter pairs, changelog names, versions."""

from __future__ import annotations

import re
from typing import Any

from streams.settings import load_settings
from streams.topics import DEAD_LETTER_SUFFIX, Topics, build_topics, changelog_name


def _topics(**overrides: Any) -> Topics:
    return build_topics(load_settings(env={}, **overrides))


def test_every_source_has_a_dead_letter_pair() -> None:
    topics = _topics(partitions=6)
    by_name = {spec.name: spec for spec in topics.all()}
    for source in topics.sources():
        assert source.dead_letter == source.name + DEAD_LETTER_SUFFIX
        paired = by_name[source.dead_letter]
        assert paired.partitions == source.partitions
        assert paired.dead_letter is None  # a dead letter is never itself dead-lettered


def test_changelog_names_follow_faust() -> None:
    settings = load_settings(env={}, namespace="shop", version=4)
    topics = build_topics(settings)
    assert topics.changelogs
    for spec in topics.changelogs:
        match = re.fullmatch(r"shop-v4-(\w+)-changelog", spec.name)
        assert match, spec.name
        assert spec.name == changelog_name(settings.app_id, match.group(1))
        assert spec.cleanup_policy == "compact"
        assert spec.internal


def test_versions_share_sources_but_not_internal_topics() -> None:
    v1, v2 = _topics(version=1), _topics(version=2)
    assert [s.name for s in v1.sources()] == [s.name for s in v2.sources()]
    internal_v1 = {s.name for s in v1.all() if s.internal}
    internal_v2 = {s.name for s in v2.all() if s.internal}
    assert internal_v1
    assert internal_v1.isdisjoint(internal_v2)


def test_names_are_unique_and_partitions_follow_settings() -> None:
    topics = _topics(partitions=3)
    names = [spec.name for spec in topics.all()]
    assert len(names) == len(set(names))
    for spec in topics.all():
        # Global aggregates (trending) are merged on a single partition.
        assert spec.partitions in (3, 1)
    assert {s.partitions for s in topics.sources()} == {3}


def test_config_carries_the_cleanup_policy() -> None:
    topics = _topics()
    assert topics.catalog.config == {"cleanup.policy": "compact"}
    assert topics.interactions.config == {"cleanup.policy": "delete"}
