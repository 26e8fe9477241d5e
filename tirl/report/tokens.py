"""Token ids back to text for the report, one string per token, with the run's own tokenizer.

Trajectory files hold ids (the trained sequence is ids, never text); the viewer shows each token
with its log-prob and entropy, so each id needs its own piece of text. Decoding ids one by one
garbles characters that span several byte-level tokens, so for byte-level BPE tokenizers (GPT-2,
Llama 3, Qwen2, SmolLM) each token's bytes are fed to an incremental UTF-8 decoder and a
character is shown on the token that completes it. Other tokenizers decode token by token.

The tokenizer is read with the ``tokenizers`` library from a ``tokenizer.json`` (no model, no
network): the run's ``final_model/``, the model cache of a built-in alias, the model directory the
config names, or the Hugging Face cache of a hub id.
"""

from __future__ import annotations

import codecs
import functools
from pathlib import Path


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in for each byte, inverted (Radford et al. 2019, encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class TokenText:
    """Per-token text of one tokenizer (``tokenizer.json``)."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self.path = path
        self._tok = Tokenizer.from_file(str(path))
        self._byte_level = type(self._tok.decoder).__name__ == "ByteLevel"
        self._bytes: dict[int, bytes] = {}

    def _token_bytes(self, i: int) -> bytes:
        b = self._bytes.get(i)
        if b is None:
            s = self._tok.id_to_token(i)
            if s is None:
                b = f"<{i}>".encode()
            else:
                table = _byte_decoder()
                b = bytes(table[c] for c in s) if all(c in table for c in s) else s.encode()  # added tokens are plain text
            self._bytes[i] = b
        return b

    def pieces(self, ids: list[int]) -> list[str]:
        """One string per id; concatenated, they read as the decoded text."""
        if not self._byte_level:
            return [self._tok.decode([i], skip_special_tokens=False) for i in ids]
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        out = [dec.decode(self._token_bytes(i)) for i in ids]
        tail = dec.decode(b"", final=True)
        if tail and out:
            out[-1] += tail
        return out

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)


def find_tokenizer(run_dir: Path, model_name: str) -> Path | None:
    """Where the run's tokenizer.json is, or None (the report then shows text without tokens)."""
    candidates = [run_dir / "final_model" / "tokenizer.json"]
    from tirl.models.load import ALIASES, cache_dir

    if model_name in ALIASES:
        candidates.append(cache_dir() / "models" / model_name / "tokenizer.json")
    else:
        candidates.append(Path(model_name).expanduser() / "tokenizer.json")
        if (Path(model_name).expanduser() / "final_model").is_dir():  # a finished run evaluated or trained from
            candidates.append(Path(model_name).expanduser() / "final_model" / "tokenizer.json")
    for c in candidates:
        if c.is_file():
            return c
    if model_name.count("/") == 1 and not Path(model_name).exists():  # a hub id: only what is cached, no download
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(model_name, "tokenizer.json")
            if isinstance(hit, str):
                return Path(hit)
        except (ImportError, ValueError):
            return None
    return None
