"""Import a Hugging Face BERT checkpoint directory (``tfpretrain import-hf``)."""


def run(from_dir, out_dir, log=print):
    """Converts ``from_dir`` (config.json, model.safetensors, vocab.txt) into a BERT directory.

    Returns a summary: the encoder's shape, parameter count and vocabulary size.
    """
    from tfpretrain.models.bert import import_hf, load_bert

    import_hf(from_dir, out_dir)
    encoder, tokenizer = load_bert(out_dir)  # proves the written directory loads
    summary = {
        "out": out_dir, "num_layers": encoder.num_layers, "hidden_dim": encoder.hidden_dim,
        "parameters": int(encoder.count_params()), "vocabulary_size": tokenizer.vocabulary_size(),
        "lowercase": tokenizer.lowercase,
    }
    log(f"Imported {from_dir} -> {out_dir}: {summary['num_layers']} layers x {summary['hidden_dim']}, "
        f"{summary['parameters']:,} parameters, {summary['vocabulary_size']} word pieces")
    return summary
