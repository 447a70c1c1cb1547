"""Log-probs of sampled completions under a model, for the policy loss, and how a GRPO step lays
its rows out for them (stage 4 of ``grpo.train_grpo``).

Three layouts of one computation, the same numbers (tested against each other, within float
round-off): ``completion_logprobs`` runs each prompt + completion row as it is;
``shared_prefix_logprobs`` runs each prompt once for all its completions; ``tree_logprobs`` also
runs once each completion prefix that several samples share (the samples of a confident policy
share long prefixes: qwq-nano's share about half their tokens at temperature 1).

A step's rows: ``micro_batches`` cuts them where padding is least (``length_split``), and
``batch_logprobs`` picks the layout for each micro-batch (``tree_pays``).
"""
from __future__ import annotations

import math

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


# ----------------------------------------------------------------------------- a GRPO step's layouts

def micro_batches(batch, advantages, cfg, tree: bool = True) -> list:
    """The rows the policy loss runs on, in micro-batches that waste the least padding.

    Rows with advantage 0 (a group whose completions all scored the same, or an unjudged
    completion) give exactly zero policy gradient: without a KL term they need no forward pass.
    They still count in the loss's denominators (``policy_update``), so the update is the same
    as on the whole batch (tested), at a fraction of the cost.

    With ``micro_batch_size`` the rows are sorted by length and cut into pieces of that size.
    Otherwise into at most ``length_buckets`` pieces (``length_split``), either of rows sorted
    by length, or, where the samples of a prompt share enough tokens that its prefix tree
    (``tree_logprobs``) is the cheaper layout, of whole prompts sorted by tree size (``tree=False``:
    rows only, for a model whose attention takes no tree mask, see ``tree_attention_ok``).
    """
    import torch

    rows = (torch.nonzero(advantages != 0).squeeze(-1) if cfg.beta == 0
            else torch.arange(len(advantages), device=advantages.device))
    rows = rows[torch.argsort(batch.lengths[rows], stable=True)]  # similar lengths share a chunk
    if cfg.micro_batch_size:
        size = cfg.micro_batch_size
        return [rows[i:i + size] for i in range(0, len(rows), size)]
    if not rows.numel():
        return []

    def split(sizes, groups):
        cuts = length_split(sizes, groups)
        bounds = list(zip([0] + cuts, cuts + [len(sizes)]))
        return bounds, sum((b - a) * sizes[b - 1] for a, b in bounds)

    lengths = batch.lengths[rows].tolist()
    row_bounds, row_cost = split(lengths, cfg.length_buckets)
    if tree:
        owners = torch.div(rows, cfg.num_generations, rounding_mode="floor")
        _, inverse = torch.unique(owners, return_inverse=True)
        _, _, depths, _ = prefix_tree(batch.completion_ids[rows], batch.completion_mask[rows], inverse)
        nodes = (depths >= 0).sum(-1)
        order = torch.argsort(nodes, stable=True)
        tree_sizes = nodes[order].tolist()
        tree_bounds, tree_cost = split(tree_sizes, cfg.length_buckets)
        if tree_pays(max(tree_sizes), tree_cost, row_cost):
            order = order.to(inverse.device)
            return [rows[torch.isin(inverse, order[a:b])] for a, b in tree_bounds]
    return [rows[a:b] for a, b in row_bounds if b > a]


def length_split(lengths: list[int], groups: int) -> list[int]:
    """Where to cut ascending ``lengths`` into at most ``groups`` runs so that padding each
    run to its longest costs the fewest tokens (the sum over runs of rows x longest length).

    Exact, by dynamic programming over the places where the length changes. Returns the
    cut positions, ascending (no cuts: one run).

    >>> length_split([10, 10, 11, 12, 40, 41, 96], 3)
    [4, 6]
    """
    import torch

    n = len(lengths)
    if groups <= 1 or n < 2 or lengths[0] == lengths[-1]:
        return []
    # Candidate ends of a run: the last row of each distinct length.
    ends = [i + 1 for i in range(n) if i == n - 1 or lengths[i + 1] != lengths[i]]
    if len(ends) > 4096:  # a (very) large batch: equal row counts, close enough
        size = math.ceil(n / groups)
        return list(range(size, n, size))
    pos = torch.tensor([0] + ends, dtype=torch.float64)            # run boundaries, 0 first
    width = torch.tensor([lengths[e - 1] for e in ends], dtype=torch.float64)
    # cost[j, i]: one run from boundary j to end i (rows pos[j]..ends[i]), padded to width[i].
    cost = (pos[1:][None, :] - pos[:-1][:, None]) * width[None, :]
    cost = cost.masked_fill(torch.ones_like(cost, dtype=torch.bool).tril(-1), float("inf"))
    best = cost[0].clone()                                          # best[i]: rows up to ends[i], 1 run
    choices, totals = [], [best[-1]]
    for _ in range(groups - 1):
        # best over the last run's start j (after boundary j, which ends a cheapest prefix)
        prev = torch.cat([torch.zeros(1, dtype=best.dtype), best[:-1]])
        total = prev[:, None] + cost
        best, arg = total.min(dim=0)
        choices.append(arg)
        totals.append(best[-1])
    k = min(range(len(totals)), key=lambda i: (float(totals[i]), i))  # fewest runs among the cheapest
    cuts, i = [], len(ends) - 1
    for arg in reversed(choices[:k]):
        j = int(arg[i])  # the last run starts after boundary j (pos[j])
        cuts.append(int(pos[j]))
        i = j - 1
    return sorted(c for c in cuts if 0 < c < n)


def batch_logprobs(model, batch, rows, cfg):
    """Per-token log-probs (and entropies) of the completions in ``rows``, each prompt run once."""
    import torch

    prompt_index = torch.div(rows, cfg.num_generations, rounding_mode="floor")
    prompts_used, inverse = torch.unique(prompt_index, return_inverse=True)
    pmask = batch.prompt_mask[prompts_used]
    lead = int((pmask.sum(0) == 0).sum())  # left-padding columns no prompt of this chunk needs
    width = int(batch.lengths[rows].max().clamp(min=1))
    ids, mask = batch.completion_ids[rows, :width], batch.completion_mask[rows, :width]
    args = (model, batch.prompt_ids[prompts_used, lead:], pmask[:, lead:], inverse, ids, mask, cfg.temperature)
    if tree_attention_ok(model):
        tree = prefix_tree(ids, mask, inverse)
        nodes = (tree[2] >= 0).sum(-1)
        if tree_pays(int(nodes.max()), len(nodes) * int(nodes.max()), len(rows) * width):
            return tree_logprobs(*args, tree=tree)
    return shared_prefix_logprobs(*args)
