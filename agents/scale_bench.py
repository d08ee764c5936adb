"""How cost grows with the catalogue: the per-unit figures behind docs/SCALING.md.

``python -m agents.scale_bench all --out reports`` runs every measurement; each part can
run alone (``pipeline``, ``hnsw``, ``redis``, ``broker``). The memory measurements run
in a fresh subprocess per size, so that one size's heap does not inflate the next:

- ``pipeline --items N``: a synthetic shop of N catalogue items; RSS after the inputs are
  materialised, after the catalogue is folded into ``LocalPipeline`` and after the
  interactions are; interactions/s of ``LocalPipeline.apply`` (user side + item side, all
  partitions in one process) and lists/s of ``LocalPipeline.recommend``; for the 300
  busiest items, their neighbour entries and what building their published lists and
  encoding their changelog record cost (``busiest_items``).
- ``batches --batch B``: the item side's CPU per batch of B interactions, as a worker
  spends it: applying the batch's deltas, building the published lists of every item it
  touched, encoding their changelog records (``item_side_batches``). The item side takes
  what arrived within ``KAPPAREC_ITEM_FLUSH_S`` (1 s), so at R events/s its batches hold
  about R interactions; the default, 2,000, is about the rate of the bench's loaded
  freshness test.
- ``hnsw --n N``: a ``VectorIndex`` with the shipped ``IndexParams`` filled with N
  clustered unit vectors, each its own array as a worker decodes them from records;
  build time, RSS delta, saved graph size, the ``ef`` the index calibrated itself to,
  and query latency and recall@10 against exact search on a sample of queries at that
  ``ef`` and at a ladder of others.
- ``redis``: ``MEMORY USAGE`` of 50-item user records (``encode_user``) and of denser
  encodings of the same lists, written to Redis db 15 and deleted afterwards.
- ``broker``: events/s of a raw consumer reading the interactions topic of a running
  embedded stack, and of ``kapparec replay`` end to end.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

GIB = 1024**3
MIB = 1024**2


def rss() -> int:
    """Resident set size of this process, in bytes."""
    return int(psutil.Process().memory_info().rss)


def peak_rss() -> int:
    """Peak resident set size of this process (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- pipeline ------------------------------------------------------------------------


def busiest_items(pipe: Any, top: int = 300, repeats: int = 5) -> dict[str, Any]:
    """What an item's neighbour lists cost where they cost most: the ``top`` items with
    the largest popularity count, each as a worker handles it after every batch that
    touches it (both published lists built, the changelog record encoded). Best of
    ``repeats`` passes, in µs per item."""
    from streams.recommend import item_list
    from streams.user_state import BOUGHT, VIEWED

    s = pipe.settings
    states = list(pipe.items.values())
    busiest = sorted(pipe.items, key=lambda i: (-pipe.items[i].count, i))[:top]
    chosen = [pipe.items[i] for i in busiest]

    def entries(state: Any) -> int:
        return sum(len(lst) for lists in state.neighbours.values() for lst in lists.values())

    def lists(state: Any) -> None:
        for relation in (BOUGHT, VIEWED):
            item_list(state, relation, pipe.catalog.get, s.item_list_size, s.half_life_s)

    def record(state: Any) -> None:
        orjson.dumps(state.to_dict())

    def best_us(work: Callable[[Any], None]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for state in chosen:
                work(state)
            times.append(time.perf_counter() - t0)
        return round(min(times) / max(1, len(chosen)) * 1e6, 1)

    return {
        "partitions": s.partitions,
        "neighbours_per_partition": s.neighbours_per_partition,
        "neighbour_entries_per_item_with_state": round(
            sum(map(entries, states)) / max(1, len(states)), 1
        ),
        f"busiest_{top}_entries": round(sum(map(entries, chosen)) / max(1, len(chosen)), 1),
        f"busiest_{top}_item_lists_us": best_us(lists),
        f"busiest_{top}_changelog_us": best_us(record),
        f"busiest_{top}_changelog_bytes": round(
            sum(len(orjson.dumps(st.to_dict())) for st in chosen) / max(1, len(chosen))
        ),
    }


def item_side_batches(pipe: Any, events: Sequence[Any], batch: int) -> dict[str, Any]:
    """The item side as a worker runs it, per batch of ``batch`` interactions: the user
    side routes each event's deltas to the item partitions (not timed); each partition
    applies its groups, decoded from their wire form (``apply``), builds the published
    lists of every item and relation the batch touched (``lists``) and encodes the
    changelog record of every state it touched (``changelog``). CPU ms and KB (of the
    item-delta messages and the changelog records) per batch, after ``pipe`` has folded
    the events before these; ``pipe`` ends as ``LocalPipeline.apply`` of the same
    events would leave it."""
    from streams.item_side import decode_groups, encode_groups
    from streams.recommend import item_list

    s = pipe.settings
    spent = {"apply": 0.0, "lists": 0.0, "changelog": 0.0}
    sizes = {"deltas": 0, "changelog": 0}
    lists = states = batches = 0
    for start in range(0, len(events), batch):
        batches += 1
        by_part: dict[int, list[Any]] = {}
        for ev in events[start : start + batch]:
            for p, group in pipe.user_side(ev).items():
                by_part.setdefault(p, []).append(group)
        for p in sorted(by_part):
            wire = encode_groups(by_part[p])
            sizes["deltas"] += len(wire)
            groups = decode_groups(wire)
            t0 = time.process_time()
            result = pipe._fold(p, groups)
            t1 = time.process_time()
            for item, relations in result.relations.items():
                state = result.states[item]
                for relation in sorted(relations):
                    item_list(state, relation, pipe.catalog.get, s.item_list_size, s.half_life_s)
                    lists += 1
            t2 = time.process_time()
            for state in result.states.values():
                sizes["changelog"] += len(orjson.dumps(state.to_dict()))
                states += 1
            t3 = time.process_time()
            spent["apply"] += t1 - t0
            spent["lists"] += t2 - t1
            spent["changelog"] += t3 - t2
    n = max(1, batches)
    return {
        "batch_events": batch,
        "batches": batches,
        **{f"batch_{k}_cpu_ms": round(v / n * 1e3, 1) for k, v in spent.items()},
        "batch_item_side_cpu_ms": round(sum(spent.values()) / n * 1e3, 1),
        "batch_lists": round(lists / n),
        "batch_states": round(states / n),
        **{f"batch_{k}_kb": round(v / n / 1024) for k, v in sizes.items()},
    }


def pipeline_run(
    items: int, events: int, users: int, lists: int, seed: int, trace: bool = False
) -> dict[str, Any]:
    """One size: memory of the catalogue and of the folded state, and events/s.

    The inputs are held as encoded messages and decoded one at a time, as a worker
    receives them, so the state owns its strings. RSS deltas can hide state that reuses
    memory freed by the input generator; with ``trace``, tracemalloc (started once the
    inputs exist) gives the bytes the state holds exactly, and the rates are slower.
    """
    from schemas.codec import decode_catalog, decode_interaction, encode
    from schemas.events import Interaction
    from streams.pipeline import LocalPipeline
    from streams.settings import load_settings
    from streams.sources import synthetic

    gc.collect()
    base = rss()
    t0 = time.perf_counter()
    cat: list[bytes] = []
    inter: list[bytes] = []
    for ev in synthetic(users, items, events, seed=seed):
        # A copy: orjson's own result objects keep far more memory than their length
        # (measured: ~4 KiB each), which would swamp the state being measured.
        (inter if isinstance(ev, Interaction) else cat).append(bytes(bytearray(encode(ev))))
    gen_s = time.perf_counter() - t0
    gc.collect()
    inputs = rss()
    if trace:
        tracemalloc.start()
    c0 = time.process_time()
    for raw in inter:
        decode_interaction(raw)
    decode_cpu = time.process_time() - c0
    pipe = LocalPipeline(load_settings())
    t0 = time.perf_counter()
    for raw in cat:
        pipe.apply_catalog(decode_catalog(raw))
    cat_s = time.perf_counter() - t0
    gc.collect()
    after_cat = rss()
    traced_cat = tracemalloc.get_traced_memory()[0] if trace else 0
    t0, c0 = time.perf_counter(), time.process_time()
    for raw in inter:
        pipe.apply(decode_interaction(raw))
    apply_s, apply_cpu = time.perf_counter() - t0, time.process_time() - c0
    gc.collect()
    after_events = rss()
    traced_events = tracemalloc.get_traced_memory()[0] if trace else 0
    sample = random.Random(seed).sample(sorted(pipe.users), min(lists, len(pipe.users)))
    c0 = time.process_time()
    for uid in sample:
        pipe.recommend(uid)
    list_cpu = time.process_time() - c0
    busy = {} if trace else busiest_items(pipe)  # tracemalloc would slow the timings
    traced_users = 0
    n_users = len(pipe.users)
    if trace:  # what the user side holds: the bytes freed by dropping every UserState
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        pipe.users.clear()
        gc.collect()
        traced_users = before - tracemalloc.get_traced_memory()[0]
    return {
        "items": items,
        "events": len(inter),
        "users_seen": n_users,
        "items_with_state": len(pipe.items),
        "generate_s": round(gen_s, 2),
        "catalog_records_per_s": round(len(cat) / cat_s),
        "apply_wall_s": round(apply_s, 2),
        "apply_cpu_s": round(apply_cpu, 2),
        "decode_apply_events_per_wall_s": round(len(inter) / apply_s),
        "decode_apply_events_per_cpu_s": round(len(inter) / apply_cpu),
        "apply_events_per_cpu_s": round(len(inter) / max(1e-9, apply_cpu - decode_cpu)),
        "lists_per_cpu_s": round(len(sample) / list_cpu, 1),
        "rss_base_mib": round(base / MIB, 1),
        "rss_inputs_mib": round(inputs / MIB, 1),
        "rss_after_catalog_mib": round(after_cat / MIB, 1),
        "rss_after_events_mib": round(after_events / MIB, 1),
        "catalog_bytes_per_item": round((after_cat - inputs) / items),
        "state_after_events_mib": round((after_events - after_cat) / MIB, 1),
        "state_bytes_per_item_with_state": round(
            (after_events - after_cat) / max(1, len(pipe.items))
        ),
        "peak_rss_mib": round(peak_rss() / MIB, 1),
        **busy,
        **(
            {
                "traced_catalog_bytes_per_item": round(traced_cat / items),
                "traced_state_mib": round((traced_events - traced_cat) / MIB, 1),
                "traced_state_bytes_per_item_with_state": round(
                    (traced_events - traced_cat) / max(1, len(pipe.items))
                ),
                "traced_total_mib": round(traced_events / MIB, 1),
                "traced_bytes_per_user": round(traced_users / max(1, n_users)),
                "traced_item_side_bytes_per_item_with_state": round(
                    (traced_events - traced_cat - traced_users) / max(1, len(pipe.items))
                ),
            }
            if trace
            else {}
        ),
    }


def batches_run(
    items: int, events: int, users: int, seed: int, batch: int, tail: int
) -> dict[str, Any]:
    """:func:`item_side_batches` over the last ``tail`` of ``events`` synthetic
    interactions, the ones before folded event by event."""
    from schemas.events import Interaction
    from streams.pipeline import LocalPipeline
    from streams.settings import load_settings
    from streams.sources import synthetic

    pipe = LocalPipeline(load_settings())
    inter: list[Any] = []
    for ev in synthetic(users, items, events, seed=seed):
        if isinstance(ev, Interaction):
            inter.append(ev)
        else:
            pipe.apply_catalog(ev)
    head = max(0, len(inter) - tail)
    for ev in inter[:head]:
        pipe.apply(ev)
    return {
        "items": items,
        "events_before": head,
        "partitions": pipe.settings.partitions,
        "neighbours_per_partition": pipe.settings.neighbours_per_partition,
        **item_side_batches(pipe, inter[head:], batch),
    }


# --- HNSW ------------------------------------------------------------------------------


def clustered_vectors(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """``n`` unit vectors around ``clusters`` random centres (items form taste clusters)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        which = rng.integers(0, clusters, m)
        block = centres[which] + 0.35 * rng.standard_normal((m, dim)).astype(np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_top(
    mat: np.ndarray, queries: np.ndarray, k: int, rows: int = 1_000_000
) -> list[list[int]]:
    """Labels of the true top ``k`` inner products per query (brute force).

    In blocks of 100 queries and ``rows`` vectors, keeping a running top ``k`` per query:
    the scores of 100 queries against all of 10 M vectors would take 4 GB at once.
    """
    found: list[list[int]] = []
    for qs in range(0, len(queries), 100):
        block = queries[qs : qs + 100]
        best_s = np.full((len(block), 0), -np.inf, dtype=np.float32)
        best_i = np.zeros((len(block), 0), dtype=np.int64)
        for start in range(0, len(mat), rows):
            new = block @ mat[start : start + rows].T
            ids = np.broadcast_to(np.arange(start, start + new.shape[1]), new.shape)
            scores = np.concatenate([best_s, new], axis=1)
            labels = np.concatenate([best_i, ids], axis=1)
            if scores.shape[1] > k:
                keep = np.argpartition(-scores, k, axis=1)[:, :k]
                scores = np.take_along_axis(scores, keep, axis=1)
                labels = np.take_along_axis(labels, keep, axis=1)
            best_s, best_i = scores, labels
        found.extend([int(x) for x in row] for row in best_i)
    return found


def hnsw_run(n: int, queries: int, seed: int, save_dir: Path, threads: int = 1) -> dict[str, Any]:
    """Build a ``VectorIndex`` of ``n`` vectors; memory, build time, latency and recall."""
    from agents.vector_replica import SPARE
    from streams.evaluation.scale import percentile, recall_at_k
    from streams.models.index import IndexParams, VectorIndex
    from streams.settings import load_settings

    # What a worker runs by default: calibrated on queries shaped like its similar lists.
    shipped = IndexParams(calibrate_k=load_settings(env={}).similar_list_size + SPARE)
    # The build is timed alone: calibration is timed on its own below.
    params = dataclasses.replace(shipped, calibrate_from=n + 1)
    gc.collect()
    base = rss()
    mat = clustered_vectors(n, params.dim, max(10, n // 1000), seed)
    rng = np.random.default_rng(seed + 1)
    qidx = rng.choice(n, queries, replace=False)
    q = mat[qidx] + 0.2 * rng.standard_normal((queries, params.dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    truth = exact_top(mat, q, 10)
    with_matrix = rss()
    index = VectorIndex(params)
    t0 = time.perf_counter()
    for i in range(n):
        index.upsert(f"{10_000_000 + i}", mat[i].copy())  # own buffer, as decoded from a record
    upsert_s = time.perf_counter() - t0
    index.graph.set_num_threads(threads)  # the shipped 1 gives a deterministic graph
    t0, c0 = time.perf_counter(), time.process_time()
    index.flush(0)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    index.graph.set_num_threads(1)
    gc.collect()
    built = rss()
    index.params = shipped
    t0 = time.perf_counter()
    calibrated_recall = index.calibrate()
    calibrate_s = time.perf_counter() - t0
    calibrated_ef = index.ef
    result: dict[str, Any] = {
        "n": n,
        "dim": params.dim,
        "m": params.m,
        "ef_construction": params.ef_construction,
        "ef": params.ef,
        "target_recall": shipped.target_recall,
        "calibrate_k": shipped.calibrate_k,
        "calibrated_ef": calibrated_ef,
        "calibrated_self_recall": calibrated_recall,
        "calibrate_s": round(calibrate_s, 1),
        "upsert_s": round(upsert_s, 1),
        "build_threads": threads,
        "build_wall_s": round(build_s, 1),
        "build_cpu_s": round(build_cpu, 1),
        "inserts_per_wall_s": round(n / build_s),
        "inserts_per_cpu_s": round(n / build_cpu),
        "rss_base_mib": round(base / MIB, 1),
        "rss_with_vectors_matrix_mib": round(with_matrix / MIB, 1),
        "rss_built_mib": round(built / MIB, 1),
        "index_delta_mib": round((built - with_matrix) / MIB, 1),
        "index_bytes_per_vector": round((built - with_matrix) / n),
    }
    save_dir.mkdir(parents=True, exist_ok=True)
    path = save_dir / f"hnsw-{n}.bin"
    index.graph.save_index(str(path))
    result["graph_file_mib"] = round(path.stat().st_size / MIB, 1)
    result["graph_file_bytes_per_vector"] = round(path.stat().st_size / n)
    path.unlink()
    ids = index.labels
    for ef in sorted({params.ef, 128, 256, 512, calibrated_ef}):
        index.ef = ef
        lat: list[float] = []
        found: list[list[int]] = []
        c0 = time.process_time()
        for row in q:
            t0 = time.perf_counter()
            got = index.query(row, 10)
            lat.append(time.perf_counter() - t0)
            found.append([ids[item] for item, _ in got])
        query_cpu = time.process_time() - c0
        result[f"ef{ef}"] = {
            "recall_at_10": round(recall_at_k(found, truth), 4),
            "p50_us": round(percentile(lat, 50) * 1e6, 1),
            "p99_us": round(percentile(lat, 99) * 1e6, 1),
            "queries_per_cpu_s": round(len(lat) / query_cpu),
        }
    index.ef = calibrated_ef
    del mat, q
    gc.collect()
    result["rss_index_only_mib"] = round(rss() / MIB, 1)
    result["peak_rss_mib"] = round(peak_rss() / MIB, 1)
    result["under_2_gib"] = rss() < 2 * GIB
    return result


# --- Redis -----------------------------------------------------------------------------


Sample = tuple[list[Any], list[str], dict[str, str]]  # recs, anchors, category of each rec


def realistic_lists(data_dir: Path, k: int, limit: int) -> list[Sample]:
    """Published lists of the REES46 slice's most active users, with their categories."""
    from schemas.events import Interaction
    from streams.pipeline import LocalPipeline
    from streams.recommend import plan
    from streams.settings import load_settings
    from streams.sources import read_events
    from streams.sources.records import SourceError

    csv = next((data_dir / "rees46-multicategory-2019oct-head").glob("*.csv"))
    pipe = LocalPipeline(load_settings())
    counts: dict[str, int] = {}
    for ev in read_events(csv):
        if isinstance(ev, SourceError):
            continue
        if isinstance(ev, Interaction):
            counts[ev.user_id] = counts.get(ev.user_id, 0) + 1
            pipe.apply(ev)
        else:
            pipe.apply_catalog(ev)  # type: ignore[arg-type]
    out = []
    for uid in sorted(counts, key=lambda u: (-counts[u], u)):
        recs = pipe.recommend(uid, k)
        if len(recs) == k:
            anchors = plan(pipe.users[uid], pipe.catalog.get).anchors
            cats = {r.item_id: (pipe.catalog.get(r.item_id) or {}).get("category") for r in recs}
            out.append((recs, anchors, {i: c for i, c in cats.items() if c}))
        if len(out) == limit:
            break
    return out


def worst_case_lists(k: int, n: int, seed: int) -> list[Sample]:
    """Lists whose every reason is ``b:``/``v:`` of one of 10 eight-digit anchors."""
    from streams.blending import Rec

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        anchors = [str(rng.randrange(10_000_000, 99_999_999)) for _ in range(10)]
        recs = [
            Rec(
                str(rng.randrange(10_000_000, 99_999_999)),
                rng.uniform(0.05, 3.0),
                f"{rng.choice('bv')}:{rng.choice(anchors)}",
            )
            for _ in range(k)
        ]
        recs.sort(key=lambda r: -r.score)
        out.append((recs, anchors, {}))
    return out


def encodings(
    recs: Sequence[Any], anchors: Sequence[str], categories: Mapping[str, str]
) -> dict[str, bytes]:
    """The user record in both shipped encodings, and the candidates measured beside them.

    ``packed`` is what ``KAPPAREC_USER_LIST_ENCODING=packed`` writes: the packed record,
    or the orjson one for a list it cannot hold.
    """
    from streams.evaluation.scale import compact_user
    from streams.serving import encode_user

    now, ts = 1_795_290_895_635, 1_570_000_005_000
    current = encode_user(recs, anchors, 1, "A", now, ts)
    return {
        "current": current,
        "packed": encode_user(recs, anchors, 1, "A", now, ts, categories.get),
        "parallel_arrays": compact_user(recs, anchors, 1, "A", now, ts),
        "parallel_arrays_no_scores": compact_user(recs, anchors, 1, "A", now, ts, scores=False),
        "current_zlib": zlib.compress(current, 6),
    }


def item_lists(n: int, size: int, seed: int) -> list[bytes]:
    """``bought:``/``viewed:`` records of ``size`` eight-digit items, as workers publish."""
    from streams.serving import encode_list

    rng = random.Random(seed)
    return [
        encode_list(
            [
                [str(rng.randrange(10_000_000, 99_999_999)), round(rng.uniform(0.1, 5), 4)]
                for _ in range(size)
            ],
            1_795_290_895_635,
            1_570_000_005_000,
        )
        for _ in range(n)
    ]


def redis_run(url: str, data_dir: Path, samples: int, seed: int) -> dict[str, Any]:
    """``MEMORY USAGE`` per encoding, median over the sampled lists; keys deleted after."""
    import redis

    from streams.evaluation.scale import percentile
    from streams.serving import Keys
    from streams.settings import load_settings

    r = redis.Redis.from_url(url)
    # "kscale00" has the length of "kapparec", so keys are as long as production ones.
    keys = Keys("kscale00", 1)
    ttl = 30 * 86_400
    sets = {
        "rees46": realistic_lists(data_dir, 50, samples),
        "worst_case": worst_case_lists(50, samples, seed),
    }
    result: dict[str, Any] = {
        "redis": r.info("server")["redis_version"],
        "allocator": r.info("memory")["mem_allocator"],
    }
    written: list[str] = []
    try:
        for name, lists in sets.items():
            per: dict[str, dict[str, list[int]]] = {}
            packed = 0  # lists the packed encoding held (the others fell back to orjson)
            for n, (recs, anchors, categories) in enumerate(lists):
                for e, (enc, raw) in enumerate(encodings(recs, anchors, categories).items()):
                    # nine digits, like REES46 user ids: every key has the production length
                    key = keys.user(str(512_000_000 + 10 * n + e))
                    r.set(key, raw, ex=ttl)
                    written.append(key)
                    usage = int(r.memory_usage(key, samples=0) or 0)
                    slot = per.setdefault(enc, {"value": [], "memory_usage": []})
                    slot["value"].append(len(raw))
                    slot["memory_usage"].append(usage)
                    packed += enc == "packed" and raw[:1] != b"{"
            result[name] = {
                "lists": len(lists),
                "lists_packed": packed,
                "reasons": _reason_mix(lists),
                **{
                    enc: {
                        "value_bytes_p50": percentile(v["value"], 50),
                        "value_bytes_max": max(v["value"]),
                        "memory_usage_p50": percentile(v["memory_usage"], 50),
                        "memory_usage_max": max(v["memory_usage"]),
                    }
                    for enc, v in per.items()
                },
            }
        # 20 entries (similar lists, and bought/viewed before they grew) and the shipped
        # bought/viewed length
        for size in sorted({20, load_settings(env={}).item_list_size}):
            usage = []
            for n, raw in enumerate(item_lists(samples, size, seed)):
                key = keys.bought(str(10_000_000 + n))
                r.set(key, raw, ex=ttl)
                written.append(key)
                usage.append((len(raw), int(r.memory_usage(key, samples=0) or 0)))
            result[f"item_list_{size}"] = {
                "value_bytes_p50": percentile([u[0] for u in usage], 50),
                "memory_usage_p50": percentile([u[1] for u in usage], 50),
            }
    finally:
        for start in range(0, len(written), 500):
            r.delete(*written[start : start + 500])
    result["keys_left"] = sum(1 for _ in r.scan_iter(match="kscale00:*", count=1000))
    return result


def _reason_mix(lists: Sequence[Sample]) -> dict[str, int]:
    mix: dict[str, int] = {}
    for recs, _, _ in lists:
        for rec in recs:
            kind = rec.reason.split(":", 1)[0]
            mix[kind] = mix.get(kind, 0) + 1
    return mix


# --- broker ----------------------------------------------------------------------------


def raw_consume(
    bootstrap: str, topic: str, partitions: int, expected: int, decode: bool
) -> dict[str, Any]:
    """Events/s of one librdkafka consumer reading ``topic`` from the start to ``expected``."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from schemas.codec import decode_interaction

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"scale-raw-{os.getpid()}-{time.time_ns()}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    n = 0
    first = last = 0.0
    idle_since = time.monotonic()
    try:
        # From the first message to the last: the wait for the group to start is not counted.
        while n < expected and time.monotonic() - idle_since < 10:
            batch = c.consume(10_000, 1.0)
            for msg in batch:
                if msg.error() is not None:
                    continue
                if n == 0:
                    first = time.perf_counter()
                if decode:
                    decode_interaction(msg.value())
                n += 1
            if batch:
                last = time.perf_counter()
                idle_since = time.monotonic()
        elapsed = last - first
    finally:
        c.close()
    return {
        "events": n,
        "seconds": round(elapsed, 2),
        "events_per_s": round(n / elapsed) if elapsed else None,
    }


def broker_run(
    events: int,
    replay_events: int,
    seed: int,
    state_dir: Path,
    replay_workers: Sequence[int] = (1,),
) -> dict[str, Any]:
    """Produce to a fresh topic set of the running stack; read it raw and by ``kapparec replay``.

    Each count in ``replay_workers`` replays its own fresh copy of the same log.
    """
    from agents.admin import ensure_topics
    from agents.bench import discard_after, run_settings
    from agents.producer import produce
    from infra import stack
    from streams.evaluation.scale import list_agreement
    from streams.settings import load_settings
    from streams.sources import synthetic
    from streams.topics import build_topics

    state = stack.read_state(str(state_dir))
    if state is None:
        raise SystemExit(f"no stack recorded in {state_dir}: run `kapparec up` with it first")
    base = load_settings(fallback=state, state_dir=str(state_dir))
    result: dict[str, Any] = {"partitions": base.partitions}
    s = run_settings(base, state, "scale")
    try:
        ensure_topics(s.kafka_bootstrap, build_topics(s).all())
        t0 = time.perf_counter()
        summary = produce(
            s, synthetic(max(100, events // 20), 10_000, events, seed=seed), progress=False
        )
        produce_s = time.perf_counter() - t0
        result["produce"] = {
            "records": summary.delivered_total,
            "seconds": round(produce_s, 1),
            "records_per_s": round(summary.delivered_total / produce_s),
        }
        topic = build_topics(s).interactions.name
        events = summary.delivered.get(topic, 0)
        result["raw_consume"] = raw_consume(
            s.kafka_bootstrap, topic, s.partitions, events, decode=False
        )
        result["raw_consume_decoded"] = raw_consume(
            s.kafka_bootstrap, topic, s.partitions, events, decode=True
        )
        if replay_events:
            runs = [_replay(base, state, state_dir, replay_events, seed, n) for n in replay_workers]
            # The same log: how many users get the same list as in the first replay, exactly,
            # in item order, and in their first ten items as a set (replay determinism, which
            # must hold whatever the worker count, capped neighbour lists included).
            first = runs[0][1]
            for run, lists in runs:
                run["same_as_first"] = list_agreement(first, lists)
            result["replay"] = [run for run, _ in runs]
    finally:
        discard_after(s)
    return result


def _replay(
    base: Any, state: Any, state_dir: Path, n_events: int, seed: int, workers: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``kapparec replay --version 2 --workers N`` of a fresh log; wall time from launch.

    Also returns the items of every user's replayed list, by user.
    """
    import redis

    from agents.admin import ensure_topics
    from agents.agreement import user_items
    from agents.bench import discard_after, run_settings
    from agents.producer import produce
    from schemas.events import Interaction
    from streams.serving import Keys
    from streams.sources import synthetic
    from streams.topics import build_topics

    s = run_settings(base, state, f"scalerp{workers}")
    try:
        ensure_topics(s.kafka_bootstrap, build_topics(s).all())
        records = list(synthetic(max(100, n_events // 20), 10_000, n_events, seed=seed))
        users = {r.user_id for r in records if isinstance(r, Interaction)}
        produce(s, records, progress=False)
        env = {
            **os.environ,
            "KAPPAREC_STATE_DIR": str(state_dir),
            "KAPPAREC_NAMESPACE": s.namespace,
            "KAPPAREC_TOPIC_PREFIX": s.topic_prefix,
        }
        command = ["replay", "--version", "2", "--workers", str(workers)]
        # CPU of the replay command and the workers it waits for: on a shared 2-core machine
        # the wall time swings with the neighbours, the CPU time much less.
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        out = subprocess.run(
            [str(Path(sys.executable).with_name("kapparec")), *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        wall = time.perf_counter() - t0
        cpu = _children_cpu() - cpu0
        # Every user of the log must have a list in the replayed version, whichever of the
        # N workers held the user (a lost partition shows here; wrong lists in the caller's
        # comparison).
        r = redis.Redis.from_url(s.redis_url)
        try:
            lists = user_items(r, Keys(s.namespace, 2), sorted(users))
        finally:
            r.close()
        return {
            "workers": workers,
            "events": n_events,
            "catalog_records": 10_000,
            "wall_s": round(wall, 1),
            "events_per_s": round(n_events / wall),
            "cpu_s": round(cpu, 1),
            "events_per_cpu_s": round(n_events / cpu) if cpu else None,
            "users": len(users),
            "users_with_a_list": len(lists),
            "returncode": out.returncode,
            "tail": out.stdout[-300:] + out.stderr[-300:],
        }, lists
    finally:
        # Its keys (every version), its topics and the replay's consumer group.
        discard_after(dataclasses.replace(s, version=2))


def _children_cpu() -> float:
    """User + system CPU seconds of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- driver ----------------------------------------------------------------------------


def _child(args: list[str]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON line."""
    out = subprocess.run(
        [sys.executable, "-m", "agents.scale_bench", *args],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen measurement, printing JSON."""
    p = argparse.ArgumentParser(prog="python -m agents.scale_bench")
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("pipeline", help="one catalogue size, in this process")
    pp.add_argument("--items", type=int, required=True)
    pp.add_argument("--events", type=int, default=100_000)
    pp.add_argument("--users", type=int, default=20_000)
    pp.add_argument("--lists", type=int, default=500)
    pp.add_argument("--trace", action="store_true", help="tracemalloc: exact bytes, slower")
    pi = sub.add_parser("batches", help="the item side per live batch, in this process")
    pi.add_argument("--items", type=int, default=10_000)
    pi.add_argument("--events", type=int, default=100_000)
    pi.add_argument("--users", type=int, default=20_000)
    pi.add_argument("--batch", type=int, default=2_000, help="interactions per batch")
    pi.add_argument("--tail", type=int, default=20_000, help="interactions run in batches")
    ph = sub.add_parser("hnsw", help="one index size, in this process")
    ph.add_argument("--n", type=int, required=True)
    ph.add_argument("--queries", type=int, default=1000)
    ph.add_argument("--threads", type=int, default=1, help="build threads (shipped: 1)")
    pr = sub.add_parser("redis", help="MEMORY USAGE of user and item records")
    pr.add_argument("--url", default="redis://127.0.0.1:6379/15")
    pr.add_argument("--samples", type=int, default=200)
    pb = sub.add_parser("broker", help="raw consume and replay on a running embedded stack")
    pb.add_argument("--events", type=int, default=200_000)
    pb.add_argument("--replay-events", type=int, default=20_000)
    pb.add_argument(
        "--replay-workers",
        default="1",
        help="comma-separated worker counts, one replay of a fresh log each (e.g. 1,2)",
    )
    pb.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("KAPPAREC_STATE_DIR", ".kapparec"))
    )
    pa = sub.add_parser("all", help="pipeline at 10k/100k/1M items, hnsw at 1M, redis")
    pa.add_argument("--out", type=Path, default=Path("reports"))
    for q in (pp, pi, ph, pr, pb, pa):
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    args = p.parse_args(argv)
    if args.cmd == "pipeline":
        res = pipeline_run(args.items, args.events, args.users, args.lists, args.seed, args.trace)
    elif args.cmd == "batches":
        res = batches_run(args.items, args.events, args.users, args.seed, args.batch, args.tail)
    elif args.cmd == "hnsw":
        res = hnsw_run(
            args.n, args.queries, args.seed, Path(os.environ.get("TMPDIR", "/tmp")), args.threads
        )
    elif args.cmd == "redis":
        res = redis_run(args.url, args.data_dir, args.samples, args.seed)
    elif args.cmd == "broker":
        res = broker_run(
            args.events,
            args.replay_events,
            args.seed,
            args.state_dir,
            [int(n) for n in args.replay_workers.split(",")],
        )
    else:
        res = {
            "pipeline": [
                _child(["pipeline", "--items", str(n), *t])
                for n in (10_000, 100_000, 1_000_000)
                for t in ([], ["--trace", "--events", "20000", "--lists", "50"])
            ],
            "hnsw": _child(["hnsw", "--n", "1000000", "--threads", "2"]),
            "redis": redis_run("redis://127.0.0.1:6379/15", args.data_dir, 200, args.seed),
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
            json.dumps(res, indent=2) + "\n"
        )
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
