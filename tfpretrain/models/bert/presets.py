"""BERT encoder sizes: the constructor arguments of `BertEncoder` except ``vocabulary_size``.

The four small sizes are those of Turc et al. (2019), "Well-Read Students Learn
Better" (BERT-Tiny, -Mini, -Small, -Medium); base and large are Devlin et al.'s.

Example:

>>> encoder = BertEncoder(vocabulary_size=tokenizer.vocabulary_size(), **BERT_PRESETS["mini"])
"""

from tfpretrain.models.transformer_backbone import transformer_preset as _preset

BERT_PRESETS = {
    "tiny": _preset(2, 128, 2, 512),
    "mini": _preset(4, 256, 4, 1024),
    "small": _preset(4, 512, 8, 2048),
    "medium": _preset(8, 512, 8, 2048),
    "base": _preset(12, 768, 12, 3072),
    "large": _preset(24, 1024, 16, 4096),
}
