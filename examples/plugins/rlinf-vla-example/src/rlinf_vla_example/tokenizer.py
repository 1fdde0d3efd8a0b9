"""A character-level tokenizer whose vocabulary is a set of characters (torch-free).

Ids: ``0`` padding, ``1`` an unknown character, ``2`` the start token every sequence begins with (so an
empty instruction is still one token), then one id per character of the charset in sorted order.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

PAD, UNK, START = 0, 1, 2
#: The charset when neither the config nor the env's text space gives one.
DEFAULT_CHARSET = string.ascii_lowercase + string.digits + " .,'-"


class CharTokenizer:
    """Maps text to ids character by character; text is cut to ``max_length`` characters."""

    def __init__(self, charset: str, max_length: int):
        chars = sorted(set(charset))
        self.ids = {c: i + START + 1 for i, c in enumerate(chars)}
        self.max_length = int(max_length)
        #: Embedding rows needed: the special ids plus one per character.
        self.vocab_size = START + 1 + len(chars)
        self._lower = not any(c.isupper() for c in chars)

    def encode(self, text: str) -> list[int]:
        """``[START, id(c) for c in text[:max_length]]``; an uppercase letter of a lowercase charset is lowered."""
        if self._lower:
            text = text.lower()
        return [START, *(self.ids.get(c, UNK) for c in text[: self.max_length])]

    def batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encoded rows right-padded with ``PAD`` to the longest one."""
        rows = [self.encode(t) for t in texts]
        width = max(len(r) for r in rows)
        return [r + [PAD] * (width - len(r)) for r in rows]
