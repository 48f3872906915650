"""GPT decoder sizes: the constructor arguments of `GptDecoder` except ``vocabulary_size``.

"base" is the size of OpenAI's GPT (Radford et al., 2018: 12 layers of 768
with 12 heads, feed-forward 3072, 512 positions); the smaller ones are for
laptops and tests.

Example:

>>> decoder = GptDecoder(vocabulary_size=tokenizer.vocabulary_size(), **GPT_PRESETS["mini"])
"""

from tfpretrain.models.transformer_backbone import transformer_preset as _preset

GPT_PRESETS = {
    "tiny": _preset(2, 128, 2, 512, 128),
    "mini": _preset(4, 256, 4, 1024, 256),
    "small": _preset(6, 512, 8, 2048, 512),
    "base": _preset(12, 768, 12, 3072, 512),
}
