"""Continue text prompts with a pretrained GPT directory (``tfpretrain generate``)."""

from tfpretrain.models.gpt.generation import SAMPLERS


def run(model_dir, prompts, max_new_tokens=30, sampler="greedy", k=10, p=0.9, temperature=1.0, seed=0,
        use_cache=True):
    """Generates a continuation of every prompt with the decoder in ``model_dir``.

    All prompts run as one batch; each continuation stops at the end-of-text
    token (``[SEP]``) or after ``max_new_tokens`` pieces.

    Args:
        model_dir: a GPT directory (``pretrain-gpt`` output).
        prompts: list of str. An empty prompt starts a new document.
        max_new_tokens: int, default 30.
        sampler: "greedy", "top_k" or "top_p".
        k: int, default 10. For "top_k".
        p: float, default 0.9. For "top_p".
        temperature: float, default 1.0. For "top_k" and "top_p".
        seed: int, default 0. The same seed gives the same samples.
        use_cache: bool, default True. Decode with the key/value cache.

    Returns:
        list of str: each prompt followed by its continuation, in the
        tokenizer's normalised form (lower-cased for uncased vocabularies,
        pieces joined by spaces).

    Example:

    >>> run("runs/gpt-tiny", ["the cat", ""], max_new_tokens=10, sampler="top_k", k=5)
    ['the cat sat on the mat .', 'i like it .']
    """
    from tfpretrain.models.gpt import GptCausalLM, is_gpt_dir, load_gpt

    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise ValueError("no prompts given; pass at least one (an empty string starts a new document)")
    if not is_gpt_dir(model_dir):
        raise ValueError(f"{model_dir} is not a GPT directory (no decoder.json); write one with "
                         "`tfpretrain pretrain-gpt`")
    decoder, tokenizer = load_gpt(model_dir)
    model = GptCausalLM(decoder, tokenizer)
    return model.generate(list(prompts), max_new_tokens=max_new_tokens, sampler=sampler, k=k, p=p,
                          temperature=temperature, seed=seed, use_cache=use_cache)
