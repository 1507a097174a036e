"""Seeds: every random step derives its own seed from the study seed and where it runs."""

from __future__ import annotations

import hashlib


def derive_seed(study_seed: int, *parts: object) -> int:
    """A seed in [0, 2**31) from the study seed and names (step, wildcards), stable across runs and hosts.

    Hashing rather than adding keeps seeds of different steps and networks unrelated.
    """
    text = "\x1f".join([str(int(study_seed)), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF
