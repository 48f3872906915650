"""Word vocabularies built from training text and saved as plain text assets."""

import collections
import os

PADDING_TOKEN = ""
OOV_TOKEN = "[UNK]"


def build_vocabulary(token_lists, min_count=1, max_size=None, reserved=()):
    """Returns the words of ``token_lists`` by falling frequency (ties alphabetical).

    Args:
        token_lists: iterable of token sequences.
        min_count: int. Words seen fewer times are left out (they map to OOV).
        max_size: int or None. Keep at most this many words (reserved ones excluded).
        reserved: tokens put first, in order (e.g. sentence markers).

    Example:

    >>> build_vocabulary([["a", "b", "a"], ["c", "a", "b"]], min_count=2)
    ['a', 'b']
    """
    counts = collections.Counter()
    for tokens in token_lists:
        counts.update(tokens)
    for token in (PADDING_TOKEN, OOV_TOKEN, *reserved):
        counts.pop(token, None)
    words = [w for w, c in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if c >= min_count]
    if max_size is not None:
        words = words[:max_size]
    return list(reserved) + words


def save_vocabulary(words, path):
    """Writes one token per line (UTF-8), line i holding id i: the layout of a BERT ``vocab.txt``.

    Tokens may not be empty or contain line breaks (either would shift every later id).
    """
    for i, word in enumerate(words):
        if not word or "\n" in word or "\r" in word:
            raise ValueError(f"vocabulary token {i} ({word!r}) is empty or contains a line break; "
                             "a vocabulary file holds one non-empty token per line")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(word + "\n" for word in words)


def load_vocabulary(path):
    """Reads a vocabulary written by `save_vocabulary`, or a Hugging Face ``vocab.txt``.

    Raises:
        ValueError: naming ``path:line`` for an empty line before the last token.
    """
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\r\n") for line in f]
    while tokens and not tokens[-1]:
        tokens.pop()
    for number, token in enumerate(tokens, start=1):
        if not token:
            raise ValueError(f"{path}:{number}: empty vocabulary line; expected one token per line")
    return tokens
