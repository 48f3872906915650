"""Converting a Hugging Face BERT checkpoint directory into a BERT directory (``tfpretrain import-hf``).

Reads ``config.json``, ``model.safetensors`` and ``vocab.txt`` (and
``tokenizer_config.json`` when present), maps every tensor by name onto a
`BertEncoder`, and writes the result with `save_bert`. Each Hugging Face
``nn.Linear`` weight is ``(out, in)`` and becomes a Keras ``(in, out)`` kernel
by a transpose; embeddings and layer norms copy as they are.
"""

import json
import os
import re
import types

import numpy as np

from tfpretrain.models.bert.saving import save_bert

HF_CONFIG_FILE = "config.json"
HF_WEIGHTS_FILE = "model.safetensors"
HF_VOCABULARY_FILE = "vocab.txt"
HF_TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

# config.json key -> BertEncoder argument.
_CONFIG_MAP = {
    "vocab_size": "vocabulary_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "hidden_size": "hidden_dim",
    "intermediate_size": "intermediate_dim",
    "max_position_embeddings": "max_sequence_length",
    "type_vocab_size": "num_segments",
}
# config.json hidden_act -> BertEncoder activation.
_ACTIVATION_MAP = {"gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate"}
# Tensors a BertModel checkpoint may hold that the encoder does not use: the
# position-id buffer and the pretraining heads (masked LM, next sentence).
_IGNORED = re.compile(r"^(embeddings\.position_ids|cls\..*)$")


def encoder_config_from_hf(hf_config, path=HF_CONFIG_FILE):
    """`BertEncoder` arguments from a Hugging Face BERT ``config.json`` dict; ValueError on what we cannot load."""
    if not isinstance(hf_config, dict):
        raise ValueError(f"{path} holds a JSON {type(hf_config).__name__}; expected an object of BERT settings "
                         "(vocab_size, num_hidden_layers, ...)")
    model_type = hf_config.get("model_type", "bert")
    if model_type != "bert":
        raise ValueError(f"{path}: model_type is {model_type!r}; only 'bert' checkpoints can be imported")
    missing = [key for key in _CONFIG_MAP if key not in hf_config]
    if missing:
        raise ValueError(f"{path} misses {', '.join(missing)}; a BERT config.json needs {', '.join(_CONFIG_MAP)}")
    unsupported = {
        "hidden_act": (hf_config.get("hidden_act", "gelu"), tuple(_ACTIVATION_MAP),
                       "BertEncoder has the exact and the tanh-approximated gelu"),
        "position_embedding_type": (hf_config.get("position_embedding_type", "absolute"), ("absolute",),
                                    "BertEncoder has absolute position embeddings only"),
    }
    for key, (value, allowed, reason) in unsupported.items():
        if value not in allowed:
            raise ValueError(f"{path}: {key}={value!r} is not supported ({reason}); "
                             f"expected {' or '.join(map(repr, allowed))}")
    if hf_config.get("is_decoder") or hf_config.get("add_cross_attention"):
        raise ValueError(f"{path}: decoder / cross-attention BERT checkpoints are not supported; "
                         "use an encoder-only one")
    for key in _CONFIG_MAP:
        value = hf_config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path}: {key}={value!r}; expected a positive integer")
    for key, default in (("hidden_dropout_prob", 0.1), ("layer_norm_eps", 1e-12)):
        value = hf_config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{path}: {key}={value!r}; expected a number in [0, 1)")
    if hf_config["hidden_size"] % hf_config["num_attention_heads"]:
        raise ValueError(f"{path}: hidden_size={hf_config['hidden_size']} is not a multiple of "
                         f"num_attention_heads={hf_config['num_attention_heads']}")
    config = {ours: int(hf_config[key]) for key, ours in _CONFIG_MAP.items()}
    config["dropout"] = float(hf_config.get("hidden_dropout_prob", 0.1))
    config["layer_norm_epsilon"] = float(hf_config.get("layer_norm_eps", 1e-12))
    config["activation"] = _ACTIVATION_MAP[hf_config.get("hidden_act", "gelu")]
    return config


def weight_map(encoder):
    """The explicit name map: ``[(hf_name, variable, transpose)]`` for every weight of ``encoder``.

    ``hf_name`` is the tensor's name without the ``bert.`` prefix; layer norm
    weights are named ``.weight``/``.bias`` (older checkpoints' ``.gamma``/
    ``.beta`` are accepted by `import_hf`).
    """
    def dense(prefix, layer):
        return [(f"{prefix}.weight", layer.kernel, True), (f"{prefix}.bias", layer.bias, False)]

    def norm(prefix, layer):
        return [(f"{prefix}.weight", layer.gamma, False), (f"{prefix}.bias", layer.beta, False)]

    mapping = [
        ("embeddings.word_embeddings.weight", encoder.token_embedding.embeddings, False),
        ("embeddings.position_embeddings.weight", encoder.position_embedding.position_embeddings, False),
        ("embeddings.token_type_embeddings.weight", encoder.segment_embedding.embeddings, False),
        *norm("embeddings.LayerNorm", encoder.embeddings_layer_norm),
    ]
    for i, block in enumerate(encoder.transformer_layers):
        prefix = f"encoder.layer.{i}"
        mapping += [
            *dense(f"{prefix}.attention.self.query", block.query_dense),
            *dense(f"{prefix}.attention.self.key", block.key_dense),
            *dense(f"{prefix}.attention.self.value", block.value_dense),
            *dense(f"{prefix}.attention.output.dense", block.attention_output_dense),
            *norm(f"{prefix}.attention.output.LayerNorm", block.attention_layer_norm),
            *dense(f"{prefix}.intermediate.dense", block.intermediate_dense),
            *dense(f"{prefix}.output.dense", block.output_dense),
            *norm(f"{prefix}.output.LayerNorm", block.output_layer_norm),
        ]
    mapping += dense("pooler.dense", encoder.pooler)
    return mapping


def _strip_prefix(tensors):
    """Drops a leading ``bert.`` (BertForPreTraining and friends) from every tensor name."""
    return {name[len("bert."):] if name.startswith("bert.") else name: value for name, value in tensors.items()}


def _alias(name, tensors):
    """The name under which ``tensors`` holds ``name``: old checkpoints call layer norm weights gamma/beta."""
    if name in tensors or ".LayerNorm." not in name:
        return name
    old = name.replace(".LayerNorm.weight", ".LayerNorm.gamma").replace(".LayerNorm.bias", ".LayerNorm.beta")
    return old if old in tensors else name


def _lowercase(from_dir, hf_config):
    """``(lowercase, strip_accents)`` from tokenizer_config.json, else guessed from the model's name."""
    path = os.path.join(from_dir, HF_TOKENIZER_CONFIG_FILE)
    if os.path.exists(path):
        tokenizer_config = _read_json(path)
        if not isinstance(tokenizer_config, dict):
            raise ValueError(f"{path} holds a JSON {type(tokenizer_config).__name__}; expected an object "
                             "(do_lower_case, strip_accents, ...)")
        if "do_lower_case" in tokenizer_config:
            strip_accents = tokenizer_config.get("strip_accents")
            return bool(tokenizer_config["do_lower_case"]), None if strip_accents is None else bool(strip_accents)
    name = (hf_config.get("_name_or_path") or os.path.basename(os.path.normpath(from_dir))).lower()
    return "-cased" not in name and "_cased" not in name, None


def _read_json(path):
    """The JSON in ``path``; ValueError naming the file and line when it is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error}); expected the JSON file Hugging Face saves") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg}); expected the JSON file "
                         "Hugging Face saves (download it again)") from None


def _load_tensors(path):
    """Every tensor of a ``.safetensors`` file; ValueError naming the file when it is damaged."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is damaged or incomplete (safetensors: {error}); download it again") from None


def _check_finite(value, key, path):
    """ValueError naming the tensor when ``value`` holds NaN or infinite numbers."""
    finite = np.isfinite(value)
    if not finite.all():
        bad = value[~finite]
        raise ValueError(f"tensor {key!r} in {path} holds {bad.size} non-finite values "
                         f"({int(np.isnan(bad).sum())} NaN, {int(np.isinf(bad).sum())} infinite) of {value.size}; "
                         "the checkpoint is damaged: download it again")


def import_hf(from_dir, out_dir):
    """Converts a Hugging Face BERT checkpoint directory into a BERT directory.

    Args:
        from_dir: str. Holds ``config.json``, ``model.safetensors`` and
            ``vocab.txt`` (a ``BertModel``/``BertForPreTraining``/... save;
            tensor names with or without the ``bert.`` prefix), and optionally
            ``tokenizer_config.json`` (``do_lower_case``, ``strip_accents``;
            without it, names containing "cased" but not "uncased" are cased).
        out_dir: str. Where to write the BERT directory (`save_bert`).

    Returns:
        The `BertEncoder` with the imported weights.

    Raises:
        FileNotFoundError: a needed file is missing.
        ValueError: ``from_dir`` is a file; a JSON file is not JSON; the
            config holds something ``BertEncoder`` cannot represent
            (``hidden_act`` other than gelu, relative position embeddings,
            a setting of the wrong type, ...); ``vocab.txt`` disagrees with
            ``vocab_size``; ``model.safetensors`` is damaged or truncated; a
            tensor is missing, misshaped, unexpected or holds NaN / Inf.

    Example:

    >>> import_hf("downloads/all-MiniLM-L6-v2", "runs/minilm")
    >>> encoder, tokenizer = load_bert("runs/minilm")
    """
    from tfpretrain.models.bert.encoder import BertEncoder
    from tfpretrain.text.vocabulary import load_vocabulary

    from_dir = os.fspath(from_dir)
    if os.path.isfile(from_dir):
        raise ValueError(f"{from_dir} is a file; expected the Hugging Face model directory that holds "
                         f"{HF_CONFIG_FILE}, {HF_WEIGHTS_FILE} and {HF_VOCABULARY_FILE}")
    if not os.path.isdir(from_dir):
        raise FileNotFoundError(f"{from_dir}: no such directory; expected a Hugging Face model directory "
                                f"({HF_CONFIG_FILE}, {HF_WEIGHTS_FILE}, {HF_VOCABULARY_FILE})")
    for name in (HF_CONFIG_FILE, HF_WEIGHTS_FILE, HF_VOCABULARY_FILE):
        if not os.path.exists(os.path.join(from_dir, name)):
            hint = ""
            if name == HF_WEIGHTS_FILE and os.path.exists(os.path.join(from_dir, "pytorch_model.bin")):
                hint = " (only pytorch_model.bin is there: re-save the model with safe_serialization=True)"
            raise FileNotFoundError(
                f"{os.path.join(from_dir, name)} not found{hint}; a Hugging Face BERT directory needs "
                f"{HF_CONFIG_FILE}, {HF_WEIGHTS_FILE} and {HF_VOCABULARY_FILE}"
            )
    config_path = os.path.join(from_dir, HF_CONFIG_FILE)
    hf_config = _read_json(config_path)
    config = encoder_config_from_hf(hf_config, config_path)
    vocabulary_path = os.path.join(from_dir, HF_VOCABULARY_FILE)
    try:
        vocabulary = load_vocabulary(vocabulary_path)
    except UnicodeDecodeError as error:
        raise ValueError(f"{vocabulary_path} is not UTF-8 text ({error}); expected one word piece per line") from None
    if len(vocabulary) != config["vocabulary_size"]:
        # A missing or extra line shifts every later token id: the model would read the wrong word pieces.
        raise ValueError(f"{vocabulary_path} has {len(vocabulary)} tokens but {config_path} says "
                         f"vocab_size={config['vocabulary_size']} (the rows of embeddings.word_embeddings.weight); "
                         "the two files must come from the same checkpoint: download vocab.txt again")

    weights_path = os.path.join(from_dir, HF_WEIGHTS_FILE)
    tensors = _strip_prefix(_load_tensors(weights_path))
    encoder = BertEncoder(**config)
    used = set()
    values = []
    for name, variable, transpose in weight_map(encoder):
        key = _alias(name, tensors)
        if key not in tensors:
            raise ValueError(f"{weights_path} has no tensor {name!r} (nor 'bert.{name}'), which the "
                             f"{config['num_layers']}-layer encoder of {config_path} needs")
        value = np.asarray(tensors[key], dtype="float32")
        value = value.T if transpose else value
        if value.shape != tuple(variable.shape):
            found = tuple(tensors[key].shape)
            expected = tuple(variable.shape)[::-1] if transpose else tuple(variable.shape)
            raise ValueError(f"tensor {key!r} in {weights_path} has shape {found}; expected {expected} "
                             f"from {config_path}")
        _check_finite(value, key, weights_path)
        used.add(key)
        values.append((variable, value))
    unexpected = sorted(name for name in tensors if name not in used and not _IGNORED.match(name))
    if unexpected:
        raise ValueError(f"{weights_path} holds tensors that a BertEncoder with the {config_path} config has no "
                         f"place for: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    for variable, value in values:
        variable.assign(value)

    lowercase, strip_accents = _lowercase(from_dir, hf_config)
    tokenizer = types.SimpleNamespace(vocabulary=vocabulary, lowercase=lowercase, strip_accents=strip_accents)
    save_bert(out_dir, encoder, tokenizer)
    return encoder
