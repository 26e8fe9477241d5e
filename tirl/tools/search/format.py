"""What the model reads after a search: the passages as Search-R1 prints them
(``Doc i (Title: ...) text``, one per line), duplicates dropped, each cut to a length."""

from __future__ import annotations

from tirl.tools.search.corpus import Hit

NO_MATCH = "No passage matched the query."


def _key(hit: Hit) -> str:
    return " ".join(f"{hit.title} {hit.text}".lower().split())


def dedupe(hits: list[Hit]) -> list[Hit]:
    """Hits without repeats of a passage already listed (same title and text up to case and
    spacing): corpora often hold the same paragraph twice, and a repeat shows nothing new."""
    seen: set[str] = set()
    out = []
    for h in hits:
        key = _key(h)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def cut(text: str, max_chars: int) -> str:
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    head = text[: max_chars - 1]
    space = head.rfind(" ")
    return (head[:space] if space > max_chars // 2 else head) + "…"


def format_hits(hits: list[Hit], max_chars: int) -> str:
    if not hits:
        return NO_MATCH
    return "\n".join(f"Doc {i} (Title: {h.title}) {cut(h.text, max_chars)}" for i, h in enumerate(hits, 1))
