"""Architecture-independent text pieces: readers, vocabularies, WordPiece, packing, masking, buckets and streams.

Each architecture's preprocessing (strings -> that model's inputs) lives
beside the model: `tfpretrain.models.tagger.TaggingPreprocessor`,
`tfpretrain.models.bilm.language_model_dataset`,
`tfpretrain.models.bert.masked_lm_dataset`,
`tfpretrain.models.gpt.causal_lm_dataset`,
`tfpretrain.models.ulmfit.WordTokenizer` and `word_lm_dataset`.

The names below are imported on first use (PEP 562), so that light modules
such as `tfpretrain.text.readers` (whose formats the command line offers) do
not import TensorFlow.
"""

import importlib

_EXPORTS = {
    "BEGIN_OF_WORD": "characters", "END_OF_WORD": "characters", "NUM_CHARS": "characters", "char_ids": "characters",
    "next_token_windows": "streams", "piece_sequences": "streams", "text_lines": "streams",
    "tokenize": "tokenizer", "tokenize_with_offsets": "tokenizer",
    "build_vocabulary": "vocabulary", "load_vocabulary": "vocabulary", "save_vocabulary": "vocabulary",
    "MaskedLMMasker": "masking",
    "pack_segments": "packing", "pack_words": "packing",
    "RESERVED_TOKENS": "wordpiece", "WordPieceTokenizer": "wordpiece", "learn_wordpiece_vocabulary": "wordpiece",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
