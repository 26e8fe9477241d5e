"""Incremental stop-string detection on a row's sampled tokens."""

from __future__ import annotations

from collections.abc import Sequence


class StopChecker:
    """Finds stop strings in the decoded tail of a row. Only the last few tokens are decoded:
    a stop string of n characters spans at most n tokens."""

    def __init__(self, tokenizer, stop_strings: Sequence[str]):
        self.tokenizer = tokenizer
        self.stops = [s for s in stop_strings if s]
        self.window = max((len(s) for s in self.stops), default=0) + 1

    def find(self, ids: list[int]) -> str | None:
        if not self.stops:
            return None
        tail = self.tokenizer.decode(ids[-self.window :], skip_special_tokens=False)
        # the newest token must take part in the match, otherwise it was found earlier
        newest = self.tokenizer.decode(ids[-1:], skip_special_tokens=False)
        for s in self.stops:
            pos = tail.rfind(s)
            if pos >= 0 and pos + len(s) > len(tail) - len(newest):
                return s
        return None
