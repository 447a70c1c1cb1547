"""qwqlab.logprobs: the three layouts of the completions' log-probs (plain rows, each prompt
once, each prompt's prefix tree) give the same log-probs, entropies and gradients."""
import torch

from qwqlab.logprobs import completion_logprobs
from qwqlab.tasks import ArithmeticTask

torch.set_num_threads(2)


def test_completion_logprobs_match_a_plain_forward_and_ignore_left_padding(fake):
    model, tok = fake
    short, long = tok("ab", add_special_tokens=False)["input_ids"], tok("What is 1+2", add_special_tokens=False)["input_ids"]
    comp = tok("3+4", add_special_tokens=False)["input_ids"]
    plen = len(long)
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (plen - len(short)) + short + comp, long + comp])
    attn = torch.tensor([[0] * (plen - len(short)) + [1] * (len(short) + len(comp)), [1] * (plen + len(comp))])
    logp, ent = completion_logprobs(model, ids, attn, plen, with_entropy=True)
    for row, prompt in enumerate([short, long]):
        full = torch.tensor([prompt + comp])
        ref = torch.log_softmax(model(full).logits[0, len(prompt) - 1:-1], -1)
        expected = ref.gather(-1, torch.tensor(comp).unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(logp[row], expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ent[row], -(ref.exp() * ref).sum(-1), atol=1e-5, rtol=1e-5)


def test_prefix_tree_shares_prefixes_within_a_prompt_only():
    from qwqlab.logprobs import prefix_tree
    ids = torch.tensor([[5, 6, 7, 0], [5, 6, 8, 9], [5, 6, 7, 0], [5, 1, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]).bool()
    tokens, parents, depths, node_of = prefix_tree(ids, mask, torch.tensor([0, 0, 0, 1]))
    # prompt 0: 5 -> 6 -> {7, 8 -> 9}; prompt 1 has its own 5 -> 1
    assert tokens[0, :5].tolist() == [5, 6, 7, 8, 9] and parents[0, :5].tolist() == [-1, 0, 1, 1, 3]
    assert depths[0].tolist() == [0, 1, 2, 2, 3] and depths[1].tolist() == [0, 1, -1, -1, -1]
    assert node_of.tolist() == [[0, 1, 2, -1], [0, 1, 3, 4], [0, 1, 2, -1], [0, 1, -1, -1]]


def test_shared_prefix_logprobs_equal_plain_ones_on_qwq_nano(nano):
    """Running each prompt once for all its completions gives the plain forward's log-probs,
    entropies and gradients (and the sampler's reported entropy)."""
    import copy
    from qwqlab.logprobs import shared_prefix_logprobs
    from qwqlab.decoding import encode_left, generate
    model, tok = nano
    model = copy.deepcopy(model)
    task = ArithmeticTask(split="train")
    prompts = [task.prompt(tok, p) for p in task.problems(3)]
    prompts[1] = prompts[1].replace("What is", "Please, what is")
    gens, (seqs, plen) = generate(model, tok, prompts, 2, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=40,
                                  return_tensors=True)
    enc = encode_left(tok, prompts)  # the prompts as the decoder padded them
    lengths = torch.tensor([g.num_tokens for g in gens])
    mask = torch.arange(seqs.shape[1] - plen)[None] < lengths[:, None]
    attn = torch.cat([enc["attention_mask"].repeat_interleave(2, 0), mask.long()], 1)
    lp1, ent1 = completion_logprobs(model, seqs, attn, plen, with_entropy=True)
    (lp1 * mask).sum().backward()
    g1 = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    lp2, ent2 = shared_prefix_logprobs(model, enc["input_ids"], enc["attention_mask"],
                                       torch.arange(3).repeat_interleave(2), seqs[:, plen:], mask, with_entropy=True)
    (lp2 * mask).sum().backward()
    torch.testing.assert_close(lp2 * mask, lp1 * mask, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ent2 * mask, ent1 * mask, atol=1e-4, rtol=1e-4)
    for a, p in zip(g1, model.parameters()):
        torch.testing.assert_close(p.grad, a, atol=1e-3, rtol=1e-3)
    sampler = torch.tensor([g.entropy for g in gens])
    torch.testing.assert_close(sampler, (ent1 * mask).sum(-1) / lengths, atol=1e-3, rtol=1e-3)


def test_tree_logprobs_equal_plain_ones_on_qwq_nano(nano):
    """The prefix-tree layout (each distinct completion prefix computed once, a tree attention
    mask) gives the plain forward's log-probs, entropies and gradients: on samples that share
    prefixes, a row repeated whole, and a row from each of two prompts that share nothing."""
    import copy
    from qwqlab.logprobs import prefix_tree, tree_logprobs
    from qwqlab.decoding import encode_left, generate
    model, tok = nano
    model = copy.deepcopy(model)
    task = ArithmeticTask(split="train")
    prompts = [task.prompt(tok, p) for p in task.problems(3)]
    prompts[1] = prompts[1].replace("What is", "Please, what is")  # left padding for the others
    gens, (seqs, plen) = generate(model, tok, prompts, 4, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=48,
                                  seed=3, return_tensors=True)
    seqs = torch.cat([seqs, seqs[:1]])  # row 0 twice: a completion shared whole
    owner = torch.tensor([g.prompt_index for g in gens] + [0])
    lengths = torch.tensor([g.num_tokens for g in gens] + [gens[0].num_tokens])
    enc = encode_left(tok, prompts)
    mask = torch.arange(seqs.shape[1] - plen)[None] < lengths[:, None]
    weights = torch.linspace(-1, 1, mask.numel()).view(mask.shape)  # a loss with a distinct weight per token
    attn = torch.cat([enc["attention_mask"][owner], mask.long()], 1)
    lp1, ent1 = completion_logprobs(model, seqs, attn, plen, with_entropy=True)
    (lp1 * mask * weights).sum().backward()
    g1 = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    tree = prefix_tree(seqs[:, plen:], mask, owner)
    assert int((tree[2] >= 0).sum()) < int(mask.sum())  # the samples share tokens
    lp2, ent2 = tree_logprobs(model, enc["input_ids"], enc["attention_mask"], owner, seqs[:, plen:], mask,
                              with_entropy=True)
    (lp2 * mask * weights).sum().backward()
    torch.testing.assert_close(lp2 * mask, lp1 * mask, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ent2 * mask, ent1 * mask, atol=1e-4, rtol=1e-4)
    for a, p in zip(g1, model.parameters()):
        torch.testing.assert_close(p.grad, a, atol=1e-4, rtol=1e-3)
