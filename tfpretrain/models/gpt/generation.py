"""Autoregressive generation from a `GptDecoder`: keras-hub's samplers driving a cached (or uncached) decoder step.

The samplers (`keras_hub.samplers.GreedySampler`, ``TopKSampler``,
``TopPSampler``) run the decoding loop as one ``while_loop`` in a
`tf.function`; they call ``next(prompt, cache, index) -> (logits, hidden,
cache)`` for the distribution of the token at ``index``. With the key/value
cache ``next`` runs the decoder on one token (the one at ``index - 1``),
attending to the cached keys and values of all earlier tokens; without it
``next`` runs the decoder again on the whole prefix ``0 .. index - 1``, the
reference the cached path must reproduce token for token.

Prompts of different lengths share a batch right-padded: every row keeps its
own prompt tokens (the sampler only writes positions where ``padding_mask``
is 0), and the cache is written position by position, so a row's shorter
prompt never sees another row's padding.

Example:

>>> sampler = make_sampler("top_k", k=10, seed=0)
>>> generate = build_generate_function(decoder, sampler, stop_token_id=3, use_cache=True)
>>> token_ids, padding_mask = pad_prompts([[3, 17, 18]], max_new_tokens=20, max_sequence_length=128)
>>> token_ids = generate(token_ids, padding_mask)   # (1, 23): the prompt, then 20 sampled ids
"""

import warnings

import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from tfpretrain.models.gpt.decoder import tied_logits

SAMPLERS = ("greedy", "top_k", "top_p")


def make_sampler(sampler="greedy", k=10, p=0.9, temperature=1.0, seed=None):
    """A keras-hub sampler by name.

    Args:
        sampler: "greedy" (the most likely token), "top_k" (sample among the
            ``k`` most likely) or "top_p" (nucleus sampling: among the fewest
            tokens whose probabilities sum to ``p``).
        k: int, default 10. For "top_k".
        p: float in (0, 1], default 0.9. For "top_p".
        temperature: float > 0, default 1.0. Logits are divided by it before
            the softmax (ignored by "greedy").
        seed: int or None. Seed of the sampling random stream.

    Returns:
        a `keras_hub.samplers.Sampler`.

    Example:

    >>> make_sampler("top_p", p=0.9, temperature=0.8, seed=0)

    References:
        Fan et al. (2018). Hierarchical Neural Story Generation (top-k).
        Holtzman et al. (2020). The Curious Case of Neural Text Degeneration
        (top-p).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if sampler == "greedy":
        return keras_hub.samplers.GreedySampler()
    if sampler == "top_k":
        if int(k) < 1:
            raise ValueError(f"top_k sampling needs k >= 1, got k={k}")
        return keras_hub.samplers.TopKSampler(k=int(k), seed=seed, temperature=temperature)
    if not 0 < p <= 1:
        raise ValueError(f"top_p sampling needs 0 < p <= 1, got p={p}")
    return keras_hub.samplers.TopPSampler(p=float(p), seed=seed, temperature=temperature)


def reseed(sampler, seed):
    """Restarts a sampler's random stream at ``seed`` (no-op for greedy or ``seed=None``): equal seeds, equal samples.

    Example:

    >>> sampler = make_sampler("top_k", k=5)
    >>> reseed(sampler, 0); first = generate(token_ids, padding_mask)
    >>> reseed(sampler, 0); assert (generate(token_ids, padding_mask).numpy() == first.numpy()).all()
    """
    generator = getattr(sampler, "seed_generator", None)
    if generator is not None and seed is not None:
        generator.state.assign(np.array([int(seed), 0], dtype=generator.state.dtype))


def pad_prompts(prompt_ids, max_new_tokens, max_sequence_length):
    """Right-pads prompts into one batch with room for ``max_new_tokens`` after the longest.

    Args:
        prompt_ids: list of lists of int, each non-empty.
        max_new_tokens: int >= 1.
        max_sequence_length: int. The decoder's limit: the batch is at most
            this long, so fewer tokens are generated when the longest prompt
            plus ``max_new_tokens`` would exceed it (with a warning).

    Returns:
        ``(token_ids, padding_mask)``, int32 arrays (batch, length); the mask
        is 1 on prompt tokens.

    Example:

    >>> pad_prompts([[3, 7], [3]], max_new_tokens=2, max_sequence_length=128)
    (array([[3, 7, 0, 0], [3, 0, 0, 0]], dtype=int32), array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=int32))
    """
    if int(max_new_tokens) < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if not prompt_ids:
        raise ValueError("no prompts given; pass a list of prompts")
    lengths = [len(ids) for ids in prompt_ids]
    for i, length in enumerate(lengths):
        if length == 0:
            raise ValueError(f"prompt {i} has no token ids; start every prompt with at least one id (the "
                             "end-of-text id [SEP] starts a new document)")
        if length >= max_sequence_length:
            raise ValueError(
                f"prompt {i} has {length} tokens but the decoder reads at most {max_sequence_length} "
                f"(max_sequence_length), so there is no room for a new token; shorten the prompt to fewer than "
                f"{max_sequence_length} tokens")
    length = max(lengths) + int(max_new_tokens)
    if length > max_sequence_length:
        warnings.warn(f"the longest prompt ({max(lengths)} tokens) plus max_new_tokens={max_new_tokens} exceeds the "
                      f"decoder's max_sequence_length={max_sequence_length}: generating up to "
                      f"{max_sequence_length} tokens in all", stacklevel=3)
        length = max_sequence_length
    token_ids = np.zeros((len(prompt_ids), length), "int32")
    padding_mask = np.zeros((len(prompt_ids), length), "int32")
    for row, ids in enumerate(prompt_ids):
        token_ids[row, : len(ids)] = ids
        padding_mask[row, : len(ids)] = 1
    return token_ids, padding_mask


def build_generate_function(decoder, sampler, stop_token_id=None, use_cache=True):
    """A compiled ``generate(token_ids, padding_mask) -> token_ids`` for `GptDecoder` ``decoder``.

    Args:
        decoder: a `GptDecoder`.
        sampler: a `keras_hub.samplers.Sampler` (see `make_sampler`).
        stop_token_id: int or None. Generation stops once every row has
            produced it after its prompt (the positions after it hold
            whatever the loop left there; `split_generated` cuts them).
        use_cache: bool, default True. Decode with the key/value cache (one
            token of computation per step) or rerun the whole prefix at every
            step (the uncached reference).

    Returns:
        a `tf.function` taking int32 ``token_ids`` and ``padding_mask``
        (batch, length), as `pad_prompts` makes them, and returning the
        ``token_ids`` with every non-prompt position up to ``length`` (or the
        stop token) filled in. Traced once for all shapes.

    Example:

    >>> generate = build_generate_function(decoder, make_sampler("greedy"), stop_token_id=3)
    >>> generate(*pad_prompts([[3, 17, 18]], 20, decoder.max_sequence_length)).shape
    TensorShape([1, 23])
    """
    stop_token_ids = None if stop_token_id is None else [int(stop_token_id)]

    def cached_next(prompt, cache, index):
        position = index - 1  # the newest token: its keys/values go into the cache at its position
        token = ops.slice(prompt, [0, position], [ops.shape(prompt)[0], 1])  # (batch, 1)
        hidden, cache = decoder.call_with_cache(token, cache, position)  # (batch, 1, hidden)
        return tied_logits(decoder, hidden)[:, 0], hidden[:, 0], cache  # (batch, vocabulary), (batch, hidden)

    def uncached_next(prompt, cache, index):
        prefix = ops.slice(prompt, [0, 0], [ops.shape(prompt)[0], index])  # (batch, index): rerun it all
        hidden = decoder({"token_ids": prefix, "padding_mask": ops.ones_like(prefix)}, training=False)
        last = hidden[:, -1:]  # (batch, 1, hidden)
        return tied_logits(decoder, last)[:, 0], last[:, 0], cache

    signature = [tf.TensorSpec((None, None), tf.int32, name="token_ids"),
                 tf.TensorSpec((None, None), tf.int32, name="padding_mask")]

    @tf.function(input_signature=signature, reduce_retracing=True)
    def generate(token_ids, padding_mask):
        index = ops.min(ops.sum(padding_mask, axis=1))  # the first position some row has to generate
        cache = None
        if use_cache:  # fill the cache with the prompt part every row shares (the first step redoes its last token)
            batch, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
            cache = decoder.empty_cache(batch, length)
            _, cache = decoder.call_with_cache(token_ids[:, :index], cache, 0)
        return sampler(
            next=cached_next if use_cache else uncached_next, prompt=token_ids, cache=cache, index=index,
            mask=padding_mask, stop_token_ids=stop_token_ids,
        )

    return generate


def split_generated(token_ids, prompt_lengths, max_new_tokens, stop_token_id=None):
    """Each row's generated ids: after its prompt, at most ``max_new_tokens``, cut before the stop token.

    Args:
        token_ids: int array (batch, length), the output of a generate function.
        prompt_lengths: list of int.
        max_new_tokens: int.
        stop_token_id: int or None.

    Returns:
        list of lists of int (the stop token excluded).

    Example:

    >>> split_generated(np.array([[3, 7, 8, 3, 5]]), [2], max_new_tokens=3, stop_token_id=3)
    [[8]]
    """
    generated = []
    for row, start in zip(np.asarray(token_ids), prompt_lengths):
        ids = [int(i) for i in row[start: start + int(max_new_tokens)]]
        if stop_token_id is not None and stop_token_id in ids:
            ids = ids[: ids.index(stop_token_id)]
        generated.append(ids)
    return generated
