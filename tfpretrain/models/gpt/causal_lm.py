"""GPT's causal language model: a `GptDecoder` with a tied output projection, next-token training and generation."""

import keras
import numpy as np
import tensorflow as tf

from tfpretrain.models.gpt.decoder import DECODER_INPUTS, tied_logits
from tfpretrain.models.gpt.generation import (
    build_generate_function,
    make_sampler,
    pad_prompts,
    reseed,
    split_generated,
)
from tfpretrain.training.perplexity import LanguageModelTraining, Perplexity


class _GenerateFunctions:
    """Compiled generate functions by sampler settings; a plain object, so Keras tracks none of its state."""

    def __init__(self):
        self.by_key = {}


@keras.saving.register_keras_serializable(package="tfpretrain")
class GptCausalLM(LanguageModelTraining, keras.Model):
    """Predicts every next token of a sequence: a `GptDecoder` with its token embedding as the output projection.

    ``decoder`` -> hidden states (batch, sequence_length, hidden_dim) ->
    `tied_logits` (batch, sequence_length, vocabulary_size), float32 even
    under ``mixed_float16``. Position ``i`` scores token ``i + 1``.

    `compile` defaults to what pretraining needs
    (`tfpretrain.training.perplexity.LanguageModelTraining`): a sparse
    categorical cross-entropy from the logits averaged over the real target
    tokens (the ``sample_weight``, 1 at real targets, 0 at padding), the
    weighted metrics ``accuracy`` (next-token accuracy) and ``perplexity``
    (exp of the mean negative log-likelihood per token, taken from the loss
    rather than a second log-softmax). ``jit_compile="auto"`` is Keras'
    default: XLA on a GPU, the plain graph on a CPU.

    `generate` continues prompts with keras-hub's samplers; by default it
    decodes with a key/value cache, so each new token costs one decoder step.

    Args:
        decoder: a `tfpretrain.models.gpt.GptDecoder`. Its weights are shared.
        tokenizer: optional `tfpretrain.text.WordPieceTokenizer`, so that
            `generate` takes and returns text. Its ``[SEP]`` is the
            end-of-text token.
        **kwargs: `keras.Model` arguments (``name``, ``trainable``).

    Inputs: a dict of ``token_ids`` and ``padding_mask`` (batch,
    sequence_length) int32, as `tfpretrain.models.gpt.causal_lm_dataset`
    yields them (with the next token ids as targets and their weights).

    Outputs: logits (batch, sequence_length, vocabulary_size), float32.

    Example:

    >>> decoder = GptDecoder(vocabulary_size=tokenizer.vocabulary_size(), **GPT_PRESETS["tiny"])
    >>> model = GptCausalLM(decoder, tokenizer)
    >>> model.compile(optimizer=keras.optimizers.AdamW(3e-4))
    >>> model.fit(causal_lm_dataset(paths, tokenizer), steps_per_epoch=1000)
    >>> model.generate("the cat", max_new_tokens=10, sampler="top_p", p=0.9, seed=0)
    'the cat sat on the mat .'

    References:
        Radford et al. (2018). Improving Language Understanding by Generative
        Pre-Training.
    """

    def __init__(self, decoder, tokenizer=None, **kwargs):
        kwargs.setdefault("dtype", decoder.dtype_policy)
        super().__init__(**kwargs)
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.perplexity = Perplexity(name="perplexity")
        self._generate_functions = _GenerateFunctions()

    def call(self, inputs, training=None):
        hidden = self.decoder({key: inputs[key] for key in DECODER_INPUTS}, training=training)
        return tied_logits(self.decoder, hidden)  # (batch, seq, vocabulary)

    @property
    def end_token_id(self):
        """The end-of-text id (the tokenizer's ``[SEP]``), or None without a tokenizer."""
        return None if self.tokenizer is None else self.tokenizer.sep_token_id

    def generate(self, prompts, max_new_tokens=30, sampler="greedy", k=10, p=0.9, temperature=1.0, seed=None,
                 use_cache=True):
        """Continues each prompt by up to ``max_new_tokens`` tokens, stopping at the end-of-text token.

        Text prompts are word-pieced and start with ``[SEP]`` (the end of the
        previous document, as in pretraining), so an empty prompt generates
        a document from scratch. All prompts run as one batch.

        Args:
            prompts: a str or a list of str (needs the ``tokenizer``), or a
                list of lists of token ids (used as they are; each non-empty).
            max_new_tokens: int, default 30. At most this many tokens per
                prompt; fewer when the end-of-text token comes first or the
                prompt plus ``max_new_tokens`` would pass the decoder's
                ``max_sequence_length`` (then a warning says so).
            sampler: "greedy", "top_k" or "top_p" (see
                `tfpretrain.models.gpt.generation.make_sampler`).
            k: int, default 10. For "top_k".
            p: float, default 0.9. For "top_p".
            temperature: float, default 1.0. For "top_k" and "top_p".
            seed: int or None. The same seed gives the same samples.
            use_cache: bool, default True. False reruns the decoder on the
                whole prefix at every step (the reference for the cache;
                slower, same tokens).

        Returns:
            for text prompts the prompt and its continuation as text (the
            tokenizer's normalised form: ``tokenizer.detokenize``); a single
            str for a single str. For id prompts a list of lists of ids, the
            prompt followed by the new ids (the end-of-text id left out).

        Raises:
            ValueError: a prompt as long as the decoder's
                ``max_sequence_length`` or longer; an unknown sampler.
        """
        single = isinstance(prompts, str)
        texts = [prompts] if single else list(prompts)
        is_text = bool(texts) and all(isinstance(t, str) for t in texts)
        if is_text:
            if self.tokenizer is None:
                raise ValueError("GptCausalLM.generate got text prompts but the model has no tokenizer; build it "
                                 "with GptCausalLM(decoder, tokenizer) or pass lists of token ids")
            pieces = self.tokenizer(np.array(texts, dtype=object)).to_list()
            prompt_ids = [[self.end_token_id] + ids for ids in pieces]
        else:
            prompt_ids = [[int(i) for i in ids] for ids in texts]
        token_ids, padding_mask = pad_prompts(prompt_ids, max_new_tokens, self.decoder.max_sequence_length)
        key = (sampler, int(k), float(p), float(temperature), bool(use_cache))
        if key not in self._generate_functions.by_key:
            sampler_object = make_sampler(sampler, k=k, p=p, temperature=temperature, seed=seed)
            self._generate_functions.by_key[key] = (sampler_object, build_generate_function(
                self.decoder, sampler_object, stop_token_id=self.end_token_id, use_cache=use_cache))
        sampler_object, generate = self._generate_functions.by_key[key]
        reseed(sampler_object, seed)
        output = generate(token_ids, padding_mask).numpy()
        new_ids = split_generated(output, [len(ids) for ids in prompt_ids], max_new_tokens, self.end_token_id)
        full = [prompt + new for prompt, new in zip(prompt_ids, new_ids)]
        if not is_text:
            return full
        pieces = tf.ragged.constant([ids[1:] for ids in full], dtype=tf.int32, ragged_rank=1)  # no leading [SEP]
        decoded = [text.decode("utf-8") for text in self.tokenizer.detokenize(pieces).numpy()]
        return decoded[0] if single else decoded

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "decoder": keras.saving.serialize_keras_object(self.decoder),
        }
        if self.tokenizer is not None:
            config["tokenizer"] = keras.saving.serialize_keras_object(self.tokenizer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        if config.get("tokenizer") is not None:
            config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)
