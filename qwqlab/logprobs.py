"""Log-probs of sampled completions under a model, for the policy loss.

Three layouts of one computation, the same numbers (tested against each other):
``completion_logprobs`` runs each prompt + completion row as it is; ``shared_prefix_logprobs``
runs each prompt once for all its completions; ``tree_logprobs`` also runs once each
completion prefix that several samples share (the samples of a confident policy share long
prefixes: qwq-nano's share about half their tokens at temperature 1). ``grpo.batch_logprobs``
picks the layout for each micro-batch.
"""
from __future__ import annotations

#: The prefix-tree layout's limits: at most this many nodes per prompt (its attention mask
#: grows as the square), and only when it pads to at most this share of the rows' tokens.
MAX_TREE_NODES = 1024
TREE_GAIN = 0.9


def tree_pays(largest_tree: int, tree_tokens: int, row_tokens: int) -> bool:
    """Whether the prefix-tree layout is the one to run: its largest tree within
    ``MAX_TREE_NODES``, and its padded tokens at most ``TREE_GAIN`` of the row layout's."""
    return largest_tree <= MAX_TREE_NODES and tree_tokens <= TREE_GAIN * row_tokens


def completion_logprobs(model, input_ids, attention_mask, prompt_length: int, temperature: float = 1.0,
                        with_entropy: bool = False):
    """Log-probs of each completion token (and optionally the policy's entropy there).

    ``input_ids`` are left-padded prompts followed by completions; positions come from the
    attention mask so that they match what ``generate`` used. Logits are divided by the
    sampling ``temperature``, so the log-probs are those of the distribution sampled from.

    Returns ``(logp, entropy)``, each ``(batch, tokens - prompt_length)``; entropy is
    ``None`` unless asked for (it is computed without gradient).
    """
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=False, logits_to_keep=input_ids.shape[1] - prompt_length + 1)
    return _token_logprobs(out.logits[:, :-1], input_ids[:, prompt_length:], temperature, with_entropy)


def _token_logprobs(logits, targets, temperature: float, with_entropy: bool):
    import torch

    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    log_norm = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_norm
    entropy = None
    if with_entropy:
        with torch.no_grad():
            lp = logits.detach() - log_norm.detach().unsqueeze(-1)
            entropy = -(lp.exp() * lp).sum(-1)
    return logp, entropy


def shared_prefix_logprobs(model, prompt_ids, prompt_mask, prompt_index, completion_ids, completion_mask,
                           temperature: float = 1.0, with_entropy: bool = False):
    """``completion_logprobs`` with each prompt run through the model once for all its completions.

    GRPO scores ``num_generations`` completions of every prompt: the prompt's keys and
    values are computed once (with gradient), then indexed out to its completions through the
    KV cache, so the prompt tokens cost ``1/num_generations`` of a plain forward pass. Same
    log-probs and gradients as ``completion_logprobs`` (tested).

    Args:
        prompt_ids, prompt_mask: ``(prompts, prompt_length)``, left-padded.
        prompt_index: ``(rows,)`` which prompt each completion continues.
        completion_ids, completion_mask: ``(rows, tokens)``, right-padded.

    Returns ``(logp, entropy)``, each ``(rows, tokens)``.
    """
    import torch
    from transformers import DynamicCache

    from qwqlab.decoding import cache_kwarg

    cache_kw = cache_kwarg(model)
    cache = DynamicCache()
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask,
                position_ids=(prompt_mask.long().cumsum(-1) - 1).clamp(min=0), use_cache=True,
                logits_to_keep=1, **{cache_kw: cache})
    first = out.logits[:, -1][prompt_index].unsqueeze(1)  # predicts each completion's first token
    if completion_ids.shape[1] == 1:
        return _token_logprobs(first, completion_ids, temperature, with_entropy)
    cache.batch_select_indices(prompt_index)  # differentiable indexing: gradients flow back to the prompt
    rest = completion_ids[:, :-1]
    mask = torch.cat([prompt_mask[prompt_index], completion_mask[:, :-1].to(prompt_mask.dtype)], dim=1)
    start = prompt_mask.sum(-1)[prompt_index].unsqueeze(1)
    position_ids = start + torch.arange(rest.shape[1], device=rest.device).unsqueeze(0)
    out = model(input_ids=rest, attention_mask=mask, position_ids=position_ids, use_cache=True,
                **{cache_kw: cache})
    return _token_logprobs(torch.cat([first, out.logits], dim=1), completion_ids, temperature, with_entropy)


def prefix_tree(completion_ids, completion_mask, prompt_index):
    """The completions of each prompt as a tree of shared prefixes (a trie).

    Samples of one prompt often agree on their first tokens, or entirely: a token sequence
    they share is one node of the tree, computed once. Returns ``(tokens, parents, depths,
    node_of)``: per prompt (``prompt_index`` values ``0..P-1``) its nodes, ``(P, nodes)``,
    padded with ``parent -1``/``depth -1``; a node's parent is a node of the same prompt or
    ``-1`` (the prompt itself), and comes before it. ``node_of`` is ``(rows, tokens)``: the
    node of each completion token (``-1`` past the completion's end).
    """
    import torch

    ids, lengths = completion_ids.tolist(), completion_mask.sum(-1).tolist()
    owners = prompt_index.tolist()
    n_prompts = max(owners) + 1 if owners else 0
    tables = [dict() for _ in range(n_prompts)]
    nodes = [[] for _ in range(n_prompts)]  # per prompt: (token, parent, depth)
    node_of = torch.full(completion_ids.shape, -1, dtype=torch.long)
    for r, (row, n, owner) in enumerate(zip(ids, lengths, owners)):
        table, mine, parent, row_nodes = tables[owner], nodes[owner], -1, []
        for depth, token in enumerate(row[:int(n)]):
            node = table.get((parent, token))
            if node is None:
                node = table[(parent, token)] = len(mine)
                mine.append((token, parent, depth))
            row_nodes.append(node)
            parent = node
        node_of[r, :len(row_nodes)] = torch.tensor(row_nodes, dtype=torch.long)
    width = max([len(m) for m in nodes] + [1])
    table = torch.tensor([[0, -1, -1]], dtype=torch.long).repeat(n_prompts, width, 1)
    for owner, mine in enumerate(nodes):
        if mine:
            table[owner, :len(mine)] = torch.tensor(mine, dtype=torch.long)
    device = completion_ids.device
    return (table[..., 0].to(device), table[..., 1].to(device), table[..., 2].to(device), node_of.to(device))


def tree_logprobs(model, prompt_ids, prompt_mask, prompt_index, completion_ids, completion_mask,
                  temperature: float = 1.0, with_entropy: bool = False, tree=None):
    """``shared_prefix_logprobs`` over the prefix tree of each prompt's completions.

    Each prompt runs once, and then each distinct completion prefix (a node of
    ``prefix_tree``) once: one sequence per prompt holding its tree's nodes, each node
    attending to the prompt and to its own ancestors (a tree attention mask), at the position
    of its depth. A token that ``k`` completions share is computed once instead of ``k``
    times, and its log-prob (one number: the same tokens give the same distribution) is
    handed to each of them, so the loss and its gradient are those of the plain forward
    (tested). Same arguments and result as ``shared_prefix_logprobs``.
    """
    import torch
    from transformers import DynamicCache

    from qwqlab.decoding import cache_kwarg

    tokens, parents, depths, node_of = tree if tree is not None else prefix_tree(
        completion_ids, completion_mask, prompt_index)
    n_prompts, width = tokens.shape
    device = prompt_ids.device
    cache_kw = cache_kwarg(model)
    cache = DynamicCache()
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask,
                position_ids=(prompt_mask.long().cumsum(-1) - 1).clamp(min=0), use_cache=True,
                logits_to_keep=1, **{cache_kw: cache})
    first = out.logits[:, -1:]  # predicts the children of the root: the completions' first tokens
    # Which nodes a node sees: itself and its ancestors (a parent comes before its child, so
    # one pass in node order copies each parent's row). Padding nodes see only themselves.
    sees = torch.eye(width, dtype=torch.bool, device=device).repeat(n_prompts, 1, 1)
    for depth in range(1, int(depths.max()) + 1 if depths.numel() else 1):
        g, j = torch.nonzero(depths == depth, as_tuple=True)
        sees[g, j] |= sees[g, parents[g, j]]
    dtype = model.get_input_embeddings().weight.dtype  # the attention's dtype, as transformers' masks have it
    keep = torch.cat([prompt_mask.bool()[:, None, :].expand(-1, width, -1), sees], dim=-1)
    mask = torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill_(~keep, float("-inf"))[:, None]
    start = prompt_mask.sum(-1, keepdim=True)
    out = model(input_ids=tokens, attention_mask=mask, position_ids=start + depths.clamp(min=0), use_cache=True,
                **{cache_kw: cache})
    logits = torch.cat([first, out.logits], dim=1).float()  # slot 0: the prompt, slot 1 + j: node j
    if temperature != 1.0:
        logits = logits / temperature
    log_norm = torch.logsumexp(logits, dim=-1)
    source = parents + 1  # each node's token is predicted at its parent's slot
    node_logp = logits.gather(1, source.unsqueeze(-1).expand(-1, -1, logits.shape[-1])).gather(
        -1, tokens.unsqueeze(-1)).squeeze(-1) - log_norm.gather(1, source)
    row_prompt = prompt_index.unsqueeze(1).expand_as(node_of)
    logp = node_logp[row_prompt, node_of.clamp(min=0)] * (node_of >= 0)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            lp = logits.detach() - log_norm.detach().unsqueeze(-1)
            slot_entropy = -(lp.exp() * lp).sum(-1)
            entropy = slot_entropy.gather(1, source)[row_prompt, node_of.clamp(min=0)] * (node_of >= 0)
    return logp, entropy


def tree_attention_ok(model) -> bool:
    """Whether ``model``'s attention takes the custom 4-D mask ``tree_logprobs`` needs (SDPA and
    eager do; flash-attention kernels take no mask)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(getattr(base, "config", None), "_attn_implementation", None) in ("sdpa", "eager")
