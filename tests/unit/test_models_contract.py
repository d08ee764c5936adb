"""One contract for every recommender the evaluation knows: determinism, unseen users and
items, untouched inputs, pickle round trip."""

from __future__ import annotations

import copy
import pickle
import random

import pytest

from schemas.events import PURCHASE, VIEW, CatalogItem, Interaction
from streams.evaluation.datasets import spec_for
from streams.evaluation.experiment import MODELS
from streams.evaluation.protocol import Recommender
from streams.settings import Settings

SPEC = spec_for("movielens")
NAMES = sorted(MODELS)
# LocalPipeline is checkpointed through Faust table changelogs, never pickled.
NOT_PICKLED = {"pipeline"}


def events(seed: int = 0, n: int = 600) -> list[CatalogItem | Interaction]:
    """A small stream: 40 items in 4 categories, 30 users with category tastes."""
    rng = random.Random(seed)
    out: list[CatalogItem | Interaction] = [
        CatalogItem(f"i{j}", 0, title=f"Film {j} ({1990 + j % 9})", category=f"movies.g{j % 4}")
        for j in range(40)
    ]
    for n_ev in range(n):
        u = rng.randrange(30)
        j = (u % 4) + 4 * rng.randrange(10) if rng.random() < 0.8 else rng.randrange(40)
        kind = PURCHASE if rng.random() < 0.6 else VIEW
        out.append(Interaction(f"e{n_ev}", kind, f"u{u}", f"i{j}", 1000 * (n_ev + 1)))
    return out


def make(name: str) -> Recommender:
    return MODELS[name](SPEC, Settings())


def feed(model: Recommender, stream: list[CatalogItem | Interaction]) -> None:
    for ev in stream:
        if isinstance(ev, Interaction):
            model.learn(ev)
        else:
            model.learn_catalog(ev)


def answers(model: Recommender) -> list[list[str]]:
    return [model.recommend(f"u{u}", 10, {f"i{u % 4}"}) for u in range(30)]


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name: str) -> None:
    a, b = make(name), make(name)
    feed(a, events())
    feed(b, events())
    assert answers(a) == answers(b)
    assert any(answers(a)), "a model that learned 600 events recommends something"


@pytest.mark.parametrize("name", NAMES)
def test_unseen_user_and_item_are_handled(name: str) -> None:
    model = make(name)
    feed(model, events())
    recs = model.recommend("never-seen", 10, set())
    assert len(recs) <= 10 and len(set(recs)) == len(recs)
    # an item with no catalogue record, first seen in an interaction
    model.learn(Interaction("x1", PURCHASE, "u1", "brand-new", 10_000_000))
    model.learn(Interaction("x2", PURCHASE, "u2", "brand-new", 10_000_001))
    recs = model.recommend("u1", 10, {"brand-new"})
    assert "brand-new" not in recs


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_not_mutated(name: str) -> None:
    model = make(name)
    stream = events()
    before = copy.deepcopy(stream)
    feed(model, stream)
    exclude = {"i0", "i4", "i8"}
    recs = model.recommend("u0", 10, exclude)
    assert exclude == {"i0", "i4", "i8"}
    assert not exclude & set(recs)
    assert stream == before
    assert [e.context for e in stream if isinstance(e, Interaction)] == [
        e.context for e in before if isinstance(e, Interaction)
    ]


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NOT_PICKLED])
def test_pickle_round_trip(name: str) -> None:
    stream = events()
    model = make(name)
    feed(model, stream[:400])
    restored = pickle.loads(pickle.dumps(model))
    assert answers(restored) == answers(model)
    feed(model, stream[400:])
    feed(restored, stream[400:])
    assert answers(restored) == answers(model)
