"""Human-readable rendering of read results for the CLI."""

from __future__ import annotations

from typing import Any

import click
import orjson


def safe(text: str) -> str:
    """``text`` with every non-printable character shown as an escape, so a hostile id or
    title cannot move the cursor, reorder the line (bidi controls) or hide itself."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


def _escape(char: str) -> str:
    cp = ord(char)
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def reason_text(reason: str) -> str:
    """``b:123`` -> ``bought with 123`` and so on."""
    kind, _, arg = reason.partition(":")
    return {
        "b": f"bought with {arg}",
        "v": f"viewed with {arg}",
        "s": f"similar to {arg}",
        "c": f"trending in {arg}",
        "t": "trending",
    }.get(kind, reason)


def describe(meta: dict[str, Any] | None) -> str:
    """Category, brand and price of an item, where known."""
    if not meta:
        return ""
    parts = [meta.get("category") or "", meta.get("brand") or ""]
    if meta.get("price") is not None:
        parts.append(f"{meta['price']:.2f}")
    if meta.get("in_stock") is False:
        parts.append("(out of stock)")
    return "  ".join(p for p in parts if p)


def show(found: tuple[Any, dict[str, dict[str, Any]]], as_json: bool, title: str) -> None:
    """Print a read result with item details, or as JSON."""
    result, metas = found
    if as_json:
        doc = result.to_dict()
        doc["catalog"] = metas
        click.echo(orjson.dumps(doc).decode())
        return
    sources = " -> ".join(result.sources) or "nothing published"
    body = title.lstrip("\n")  # leading blank lines are layout, not part of an id
    gap = "\n" * (len(title) - len(body))
    click.echo(f"{gap}{safe(body)}  (v{result.version}, from: {sources})")
    if not result.items:
        click.echo("  (empty)")
    for n, (item, score, reason) in enumerate(result.items, 1):
        click.echo(
            f"  {n:2d}. {safe(item):<12} {score:>8.3f}  {safe(describe(metas.get(item))):<48} "
            f"{safe(reason_text(reason))}"
        )
