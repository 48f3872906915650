"""Tag raw text with a trained tagger (``tfpretrain tag``)."""

import tensorflow as tf

from tfpretrain.export import TaggingModule, decode_tagging_outputs
from tfpretrain.models.tagger.saving import load_tagger


def run(model_dir, texts, batch_size=64):
    """Returns ``[{"text", "tokens", "tags"}, ...]`` for each input text, in order."""
    model, preprocessor, _ = load_tagger(model_dir)
    module = TaggingModule(model, preprocessor)
    results = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        outputs = module.tag_texts(tf.constant(batch, dtype=tf.string))
        for text, result in zip(batch, decode_tagging_outputs(outputs)):
            results.append({"text": text, **result})
    return results


def format_conll(results):
    """One ``token<TAB>tag`` line per token, a blank line after each text."""
    lines = []
    for result in results:
        lines += [f"{token}\t{tag}" for token, tag in zip(result["tokens"], result["tags"])]
        lines.append("")
    return "\n".join(lines)
