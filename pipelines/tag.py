"""Tag raw text with a trained tagger (``tfpretrain tag``)."""

from tfpretrain.pipelines import predict


def run(model_dir, texts):
    """Returns ``[{"text", "words", "tags", "starts", "ends", "score", ...}, ...]``, one per text, in order.

    The answers of `tfpretrain.pipelines.predict` (``starts`` / ``ends``: byte offsets of each word).
    """
    return predict.run(model_dir, texts)


def format_conll(results):
    """One ``word<TAB>tag`` line per word, a blank line after each text."""
    lines = []
    for result in results:
        lines += [f"{word}\t{tag}" for word, tag in zip(result["words"], result["tags"])]
        lines.append("")
    return "\n".join(lines)
