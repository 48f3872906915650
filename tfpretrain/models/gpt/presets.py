"""GPT decoder sizes: the constructor arguments of `GptDecoder` except ``vocabulary_size``.

"base" is the size of OpenAI's GPT (Radford et al., 2018: 12 layers of 768
with 12 heads, feed-forward 3072, 512 positions); the smaller ones are for
laptops and tests.

Example:

>>> decoder = GptDecoder(vocabulary_size=tokenizer.vocabulary_size(), **GPT_PRESETS["mini"])
"""


def _preset(num_layers, hidden_dim, num_heads, intermediate_dim, max_sequence_length):
    return {
        "num_layers": num_layers,
        "num_heads": num_heads,
        "hidden_dim": hidden_dim,
        "intermediate_dim": intermediate_dim,
        "dropout": 0.1,
        "max_sequence_length": max_sequence_length,
    }


GPT_PRESETS = {
    "tiny": _preset(2, 128, 2, 512, 128),
    "mini": _preset(4, 256, 4, 1024, 256),
    "small": _preset(6, 512, 8, 2048, 512),
    "base": _preset(12, 768, 12, 3072, 512),
}
