"""The model zoo: sequence, generative and self-supervised models and their building blocks (attention, positions,
embeddings, stochastic depth). Shapes, gradients, masks, decoding and argument errors."""

from __future__ import annotations

import itertools
import math
import types
import typing

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainwise
from trainwise.errors import TrainwiseError
from trainwise.models import get_spec, list_models
from trainwise.models.attention import MultiHeadAttention, reference_attention
from trainwise.models.autoencoder import kl_divergence
from trainwise.models.blocks import DropPath, gain_for, token_embedding
from trainwise.models.positional import RotaryEmbedding, SinusoidalPositionalEncoding

ZOO = ["autoencoder", "gan", "rnn", "seq2seq", "simclr", "tcn", "transformer", "vae"]
V = 12  # vocabulary for token models: 0 pad, 1 bos, 2 eos, 3..11 symbols


def tokens(b: int, t: int, lengths: list[int] | None = None, seed: int = 0) -> torch.Tensor:
    """(B, T) random symbol ids, right-padded with 0 beyond ``lengths``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, V, (b, t), generator=g)
    for i, n in enumerate(lengths or []):
        x[i, n:] = 0
    return x


# ---- registry ---------------------------------------------------------------------------------------------------


def test_every_zoo_model_is_listed_with_simple_argument_types():
    assert set(ZOO) <= set(trainwise.list_models())
    assert set(ZOO) <= set(list_models())
    simple = {int, float, bool, str, list[int]}
    for name in ZOO:
        for arg, (tp, _default) in get_spec(name).arguments().items():
            options = set(typing.get_args(tp)) if isinstance(tp, types.UnionType) else {tp}
            assert options - {type(None)} <= simple, f"{name}.{arg}: {tp} is not a config-settable type"


# ---- shapes -----------------------------------------------------------------------------------------------------

SHAPE_CASES = [
    ("rnn", (7, 3), {"hidden": 8}, lambda: torch.randn(2, 7, 3), (2, 4)),
    ("rnn", (7,), {"vocab_size": V, "cell": "gru", "bidirectional": True, "layers": 2, "hidden": 8},
     lambda: tokens(2, 7, [7, 3]), (2, 4)),
    ("rnn", (7,), {"vocab_size": V, "cell": "rnn", "hidden": 8}, lambda: tokens(2, 7, [2, 7]), (2, 4)),
    ("transformer", (7,), {"vocab_size": V, "d_model": 16, "heads": 2, "layers": 1, "pool": "cls"},
     lambda: tokens(2, 7, [7, 4]), (2, 4)),
    ("transformer", (7, 3), {"d_model": 16, "heads": 2, "layers": 1, "positional": "rotary", "pool": "last",
                             "causal": True}, lambda: torch.randn(2, 7, 3), (2, 4)),
    ("transformer", (7,), {"vocab_size": V, "d_model": 16, "heads": 2, "layers": 1, "positional": "learned"},
     lambda: tokens(2, 7, [5, 7]), (2, 4)),
    ("tcn", (16, 2), {"channels": 8, "blocks": 2}, lambda: torch.randn(2, 16, 2), (2, 4)),
    ("autoencoder", (10,), {"hidden": [8], "latent": 3}, lambda: torch.randn(2, 10), (2, 10)),
    ("autoencoder", (1, 8, 8), {"channels": [4, 8], "latent": 3}, lambda: torch.randn(2, 1, 8, 8), (2, 1, 8, 8)),
    ("autoencoder", (3, 7, 9), {"channels": [4, 4, 4], "latent": 3, "output": "sigmoid"},
     lambda: torch.rand(2, 3, 7, 9), (2, 3, 7, 9)),
    ("simclr", (1, 8, 8), {"width": 4, "feature_dim": 6, "proj_dim": 5}, lambda: torch.randn(2, 1, 8, 8), (2, 5)),
    ("simclr", (8, 8), {"width": 4, "feature_dim": 6, "proj_dim": 5}, lambda: torch.randn(2, 8, 8), (2, 5)),
    ("simclr", (10,), {"hidden": [8], "feature_dim": 6, "proj_dim": 5}, lambda: torch.randn(2, 10), (2, 5)),
]


@pytest.mark.parametrize(("name", "shape", "kwargs", "make", "expected"), SHAPE_CASES)
def test_output_shapes(name, shape, kwargs, make, expected):
    torch.manual_seed(0)
    model = trainwise.create_model(name, shape, 4, **kwargs)
    out = model(make())
    assert out.shape == expected and torch.isfinite(out).all()
    model.eval()
    assert model(make()[:1]).shape == (1, *expected[1:])  # eval with batch 1 works (batch norms included)


def test_seq2seq_vae_gan_simclr_shapes():
    torch.manual_seed(0)
    s2s = trainwise.create_model("seq2seq", (6,), V, d_model=16, heads=2, layers=1)
    assert s2s(tokens(3, 6, [6, 4, 2]), tokens(3, 5)).shape == (3, 5, V)
    vae = trainwise.create_model("vae", (1, 8, 8), 0, hidden=[16], latent=3)
    recon, mu, logvar = vae(torch.randn(5, 1, 8, 8))
    assert recon.shape == (5, 1, 8, 8) and mu.shape == logvar.shape == (5, 3)
    assert vae.encode(torch.randn(5, 1, 8, 8)).shape == (5, 3)
    assert vae.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 1, 8, 8)
    ae = trainwise.create_model("autoencoder", (1, 8, 8), 10, latent=3)  # out_dim is ignored
    assert ae.encode(torch.randn(5, 1, 8, 8)).shape == (5, 3)
    for shape in [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 7, 9), (8, 8), (10,)]:
        gan = trainwise.create_model("gan", shape, 0, latent_dim=5, width=4, hidden=[8])
        fake = gan(torch.randn(3, 5))
        assert fake.shape == (3, *shape), shape
        assert gan.discriminator(fake).shape == (3,)
        assert gan.latent_dim == 5
    simclr = trainwise.create_model("simclr", (1, 8, 8), 0, width=4, feature_dim=6, proj_dim=5)
    assert simclr.encode(torch.randn(2, 1, 8, 8)).shape == (2, 6) and simclr.feature_dim == 6
    assert simclr.projection(simclr.encoder(torch.randn(2, 1, 8, 8))).shape == (2, 5)


def test_gan_generator_output_is_tanh_range():
    torch.manual_seed(0)
    for style in ("mlp", "dcgan"):
        gan = trainwise.create_model("gan", (1, 8, 8), 0, style=style, latent_dim=4, width=4, hidden=[8])
        last = [m for m in gan.generator.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
        with torch.no_grad():
            last.weight.mul_(1000)  # huge pre-activations: the output saturates at ±1 but never goes beyond
        fake = gan(torch.randn(64, 4))
        assert fake.abs().max() <= 1.0 and fake.abs().max() > 0.99 and fake.min() < 0 < fake.max()


def test_autoencoder_anomaly_score_is_per_sample_mse():
    torch.manual_seed(0)
    ae = trainwise.create_model("autoencoder", (6,), 0, hidden=[8], latent=2)
    x = torch.randn(4, 6)
    x[2] *= 10  # an outlier reconstructs worst
    score = ae.anomaly_score(x)
    torch.testing.assert_close(score, ((ae(x) - x) ** 2).mean(1))
    assert score.argmax() == 2


# ---- gradients --------------------------------------------------------------------------------------------------


def _assert_all_grads(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


GRAD_CASES = [
    ("rnn", (6,), {"vocab_size": V, "cell": "lstm", "bidirectional": True, "layers": 2, "hidden": 8,
                   "dropout": 0.1}, lambda: tokens(3, 6, [6, 2, 4])),
    ("rnn", (6, 2), {"cell": "gru", "hidden": 8}, lambda: torch.randn(3, 6, 2)),
    ("transformer", (6,), {"vocab_size": V, "d_model": 8, "heads": 2, "layers": 2, "pool": "cls",
                           "positional": "learned"}, lambda: tokens(3, 6, [6, 2, 4])),
    ("transformer", (6, 2), {"d_model": 8, "heads": 2, "positional": "rotary", "causal": True, "pool": "last"},
     lambda: torch.randn(3, 6, 2)),
    ("tcn", (12, 2), {"channels": 4, "blocks": 3}, lambda: torch.randn(3, 12, 2)),
    ("autoencoder", (1, 8, 8), {"channels": [4, 8], "latent": 3, "norm": "batch"}, lambda: torch.randn(3, 1, 8, 8)),
    ("autoencoder", (10,), {"hidden": [8, 4], "latent": 2, "norm": "layer"}, lambda: torch.randn(3, 10)),
    ("simclr", (1, 8, 8), {"width": 4}, lambda: torch.randn(3, 1, 8, 8)),
    ("simclr", (10,), {"backbone": "mlp", "hidden": [8]}, lambda: torch.randn(3, 10)),
]


@pytest.mark.parametrize(("name", "shape", "kwargs", "make"), GRAD_CASES)
def test_every_parameter_gets_a_finite_gradient(name, shape, kwargs, make):
    torch.manual_seed(0)
    model = trainwise.create_model(name, shape, 3, **kwargs)
    out = model(make())
    out.float().pow(2).mean().backward()
    _assert_all_grads(model)


def test_seq2seq_vae_gan_gradients():
    torch.manual_seed(0)
    s2s = trainwise.create_model("seq2seq", (6,), V, d_model=8, heads=2, layers=2, positional="rotary")
    tgt = tokens(3, 5, [5, 3, 1])
    logits = s2s(tokens(3, 6, [6, 2, 4]), torch.cat([torch.ones(3, 1, dtype=torch.long), tgt[:, :-1]], 1))
    F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=0).backward()
    _assert_all_grads(s2s)

    vae = trainwise.create_model("vae", (10,), 0, hidden=[8], latent=3)
    x = torch.randn(4, 10)
    recon, mu, logvar = vae(x)
    ((recon - x).pow(2).sum(1) + kl_divergence(mu, logvar)).mean().backward()
    _assert_all_grads(vae)

    for style in ("mlp", "dcgan"):
        gan = trainwise.create_model("gan", (1, 8, 8), 0, style=style, latent_dim=4, width=4, hidden=[8],
                                     d_norm="batch")
        F.binary_cross_entropy_with_logits(gan.discriminator(gan(torch.randn(4, 4))), torch.ones(4)).backward()
        _assert_all_grads(gan)  # generator through the discriminator, and the discriminator itself


# ---- attention --------------------------------------------------------------------------------------------------


def _manual_mha(mha: MultiHeadAttention, x: torch.Tensor, mask: torch.Tensor | None,
                context: torch.Tensor | None = None) -> torch.Tensor:
    q, k, v = mha.project(x, context)
    return mha.out_proj(reference_attention(q, k, v, mask).transpose(1, 2).flatten(2))


@pytest.mark.parametrize("rotary", [False, True])
def test_sdpa_attention_matches_reference(rotary):
    torch.manual_seed(0)
    b, t, d = 3, 6, 16
    mha = MultiHeadAttention(d, 4, rotary=RotaryEmbedding(4, 32) if rotary else None).eval()
    x = torch.randn(b, t, d)
    lengths = torch.tensor([6, 4, 1])
    pad = torch.arange(t)[None] >= lengths[:, None]  # (B, T) True = pad
    causal = torch.ones(t, t, dtype=torch.bool).tril()  # query i sees keys ≤ i
    keep = ~pad[:, None, None, :]  # (B, 1, 1, T)
    cases = [
        ({}, None),
        ({"causal": True}, causal),
        ({"key_padding_mask": pad}, keep),
        ({"causal": True, "key_padding_mask": pad}, causal & keep),
    ]
    unmasked = mha(x)
    for kwargs, mask in cases:
        out = mha(x, **kwargs)
        torch.testing.assert_close(out, _manual_mha(mha, x, mask), atol=1e-5, rtol=0)
        if mask is not None:
            assert not torch.allclose(out, unmasked, atol=1e-3)  # the mask really changed something
    # cross-attention over a padded context of another length
    ctx = torch.randn(b, 4, d)
    ctx_pad = torch.tensor([[False] * 4, [False, False, True, True], [False, True, True, True]])
    out = mha(x, ctx, key_padding_mask=ctx_pad)
    torch.testing.assert_close(out, _manual_mha(mha, x, ~ctx_pad[:, None, None, :], ctx), atol=1e-5, rtol=0)


def test_reference_attention_formula():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 1, 2, 3), torch.randn(1, 1, 3, 3), torch.randn(1, 1, 3, 3)
    w = torch.tensor([[math.exp(float(q[0, 0, i] @ k[0, 0, j]) / math.sqrt(3)) for j in range(3)] for i in range(2)])
    torch.testing.assert_close(reference_attention(q, k, v)[0, 0], (w / w.sum(1, keepdim=True)) @ v[0, 0])
    mask = torch.tensor([[True, False, True], [True, True, True]])
    w[0, 1] = 0.0  # a blocked key gets zero weight
    torch.testing.assert_close(reference_attention(q, k, v, mask)[0, 0], (w / w.sum(1, keepdim=True)) @ v[0, 0])


def test_rotary_scores_depend_on_offset_only():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8, 16)
    q, k = torch.randn(8).expand(1, 1, 16, 8), torch.randn(8).expand(1, 1, 16, 8)  # same vector at every position
    rq, rk = rope(q, k)
    scores = (rq @ rk.transpose(-2, -1))[0, 0]  # (16, 16)
    for offset in (-3, 0, 2, 5):
        diag = torch.diagonal(scores, offset)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag), atol=1e-4, rtol=0)
    assert not torch.allclose(torch.diagonal(scores, 0)[:1], torch.diagonal(scores, 3)[:1])
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))  # a rotation keeps the norm


def test_sinusoidal_table_values_and_not_persistent():
    pe = SinusoidalPositionalEncoding(6, 10)
    for p, i in [(0, 0), (3, 1), (7, 2)]:
        angle = p / 10000 ** (2 * i / 6)
        assert float(pe.pe[p, 2 * i]) == pytest.approx(math.sin(angle), abs=1e-6)
        assert float(pe.pe[p, 2 * i + 1]) == pytest.approx(math.cos(angle), abs=1e-6)
    assert "pe" not in pe.state_dict()  # recomputed, never checkpointed
    with pytest.raises(TrainwiseError, match="exceeds model.max_len=10"):
        pe(torch.zeros(1, 11, 6))


# ---- positions and causality ------------------------------------------------------------------------------------


@pytest.mark.parametrize("positional", ["none", "sinusoidal", "rotary", "learned"])
def test_permutation_equivariance_only_without_positions(positional):
    torch.manual_seed(0)
    model = trainwise.create_model("transformer", (8, 4), 2, d_model=16, heads=2, layers=2,
                                   positional=positional).eval()
    x = torch.randn(3, 8, 4)
    perm = torch.randperm(8)
    h, _ = model.encode(x)
    h_perm, _ = model.encode(x[:, perm])
    if positional == "none":  # attention + position-wise layers commute with a permutation of the tokens
        torch.testing.assert_close(h_perm, h[:, perm], atol=1e-5, rtol=0)
        torch.testing.assert_close(model(x[:, perm]), model(x), atol=1e-5, rtol=0)  # mean pool: invariant
    else:
        assert not torch.allclose(h_perm, h[:, perm], atol=1e-3)


def test_seq2seq_decoder_is_causal():
    torch.manual_seed(0)
    model = trainwise.create_model("seq2seq", (6,), V, d_model=16, heads=2, layers=2, dropout=0.0).eval()
    src, tgt = tokens(2, 6, [6, 3]), tokens(2, 7, seed=1)
    t = 3
    changed = tgt.clone()
    changed[:, t + 1:] = tokens(2, 7 - t - 1, seed=2)
    a, b = model(src, tgt), model(src, changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], atol=1e-5, rtol=0)  # past unaffected by the future
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:], atol=1e-3)


def test_causal_transformer_and_tcn_do_not_see_the_future():
    torch.manual_seed(0)
    t = 4
    x = torch.randn(2, 10, 3)
    x2 = x.clone()
    x2[:, t + 1:] += 1.0
    enc = trainwise.create_model("transformer", (10, 3), 1, d_model=8, heads=2, causal=True, pool="last").eval()
    h, h2 = enc.encode(x)[0], enc.encode(x2)[0]
    torch.testing.assert_close(h[:, : t + 1], h2[:, : t + 1], atol=1e-5, rtol=0)
    assert not torch.allclose(h[:, t + 1:], h2[:, t + 1:], atol=1e-3)
    tcn = trainwise.create_model("tcn", (10, 3), 1, channels=4, blocks=2, dropout=0.0).eval()
    f, f2 = tcn.features(x), tcn.features(x2)
    torch.testing.assert_close(f[..., : t + 1], f2[..., : t + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(f[..., t + 1:], f2[..., t + 1:])
    # receptive field: 1 + 2·(3−1)·(2²−1) = 13 ≥ 10, so the last output depends on the first input
    assert tcn.receptive_field == 13
    x3 = x.clone()
    x3[:, 0] += 1.0
    assert not torch.allclose(tcn(x), tcn(x3))


# ---- decoding ---------------------------------------------------------------------------------------------------


def _s2s(seed: int, vocab: int = V, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return trainwise.create_model("seq2seq", (6,), vocab, d_model=16, heads=2, layers=1, dropout=0.0, **kw).eval()


def test_greedy_decoding_is_stepwise_argmax_and_well_formed():
    model = _s2s(0)
    src = tokens(4, 6, [6, 5, 3, 2], seed=3)
    out = model.generate(src, max_len=7)
    assert out.dtype == torch.long and out.shape[0] == 4 and out.shape[1] <= 7
    logits = model(src, torch.cat([torch.ones(4, 1, dtype=torch.long), out[:, :-1]], 1))  # teacher forced
    logits[..., [0, 1]] = float("-inf")  # pad and bos are never generated
    for i in range(4):
        row = out[i].tolist()
        end = row.index(2) + 1 if 2 in row else len(row)
        assert all(tok not in (0, 1) for tok in row[:end]) and all(tok == 0 for tok in row[end:])
        assert row[:end] == logits[i, :end].argmax(-1).tolist()


@pytest.mark.parametrize("seed", [0, 4, 5, 7])
def test_beam_search_never_worse_than_greedy(seed):
    # On seeds 4, 5 and 7 plain beam search (``beam_search`` alone) prunes the greedy path of some samples and ends up
    # with a lower log-probability than greedy; ``generate`` must still never return a worse sequence.
    model = _s2s(seed)
    src = torch.randint(3, V, (8, 6))
    greedy = model.generate(src, max_len=6)
    lp_g = model.sequence_logprob(src, greedy)
    for k in (2, 3):
        lp_b = model.sequence_logprob(src, model.generate(src, max_len=6, beam_size=k))
        assert (lp_b >= lp_g - 1e-5).all(), (k, lp_b, lp_g)


def test_wide_beam_search_finds_the_exhaustive_optimum():
    # vocabulary {pad, bos, eos, a, b}: 3 choices per step, 3 steps → a beam of 27 keeps every hypothesis and is exact
    for seed in range(3):
        model = _s2s(seed, vocab=5)
        src = torch.tensor([[3, 4, 4, 3, 0, 0], [4, 4, 3, 3, 4, 3]])
        cands = torch.tensor(list(itertools.product([2, 3, 4], repeat=3)))  # (27, 3)
        after_eos = (cands == 2).long().cumsum(1) - (cands == 2).long() > 0
        cands = cands.masked_fill(after_eos, 0)  # PAD after the first EOS
        for i in range(2):
            scores = model.sequence_logprob(src[i: i + 1].expand(len(cands), -1), cands)
            found = model.beam_search(src[i: i + 1], max_len=3, beam_size=27)[0][:, 0]
            torch.testing.assert_close(model.sequence_logprob(src[i: i + 1], found), scores.max()[None],
                                       atol=1e-4, rtol=0)


def _pad_after_eos(seqs: list[tuple[int, ...]], width: int) -> torch.Tensor:
    return torch.tensor([list(s) + [0] * (width - len(s)) for s in seqs])


def test_beam_search_matches_a_reference_beam_search():
    """Against beam search written out over Python tuples, every prefix scored by teacher-forced
    ``sequence_logprob``: the same k hypotheses, in the same order, with the same scores."""
    vocab, k, steps = 6, 3, 4
    for seed in range(3):
        model = _s2s(seed, vocab=vocab)
        src = torch.randint(3, vocab, (1, 6), generator=torch.Generator().manual_seed(seed))
        beams: list[tuple[int, ...]] = [()]
        for _ in range(steps):
            cands = [h for h in beams if h and h[-1] == 2]  # finished hypotheses keep their place
            cands += [h + (t,) for h in beams if not (h and h[-1] == 2) for t in range(2, vocab)]
            scores = model.sequence_logprob(src.expand(len(cands), -1), _pad_after_eos(cands, steps))
            beams = [cands[i] for i in scores.argsort(descending=True)[:k].tolist()]
        ref_scores = model.sequence_logprob(src.expand(k, -1), _pad_after_eos(beams, steps))
        hyps, scores = model.beam_search(src, max_len=steps, beam_size=k)  # (1, k, L), (1, k)
        assert hyps.shape[:2] == (1, k)
        assert [tuple(t for t in row if t != 0) for row in hyps[0].tolist()] == beams
        torch.testing.assert_close(scores[0], ref_scores, atol=1e-4, rtol=0)
        # the running scores are the teacher-forced log-probabilities of the returned sequences
        torch.testing.assert_close(scores[0], model.sequence_logprob(src.expand(k, -1), hyps[0]), atol=1e-4, rtol=0)


def test_sequence_logprob_counts_tokens_through_eos():
    model = _s2s(0)
    src = tokens(1, 6)
    tgt = torch.tensor([[5, 6, 2, 0, 0]])
    logp = F.log_softmax(model(src, torch.tensor([[1, 5, 6, 2, 0]])), -1)[0]
    expected = logp[0, 5] + logp[1, 6] + logp[2, 2]
    torch.testing.assert_close(model.sequence_logprob(src, tgt), expected[None])
    garbage_after_eos = torch.tensor([[5, 6, 2, 7, 8]])  # tokens after EOS are not part of the sequence
    torch.testing.assert_close(model.sequence_logprob(src, garbage_after_eos), expected[None])


# ---- VAE, embeddings, packing, blocks ----------------------------------------------------------------------------


def test_kl_divergence_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 4), torch.randn(5, 4)
    q, p = torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)
    torch.testing.assert_close(kl_divergence(mu, logvar), torch.distributions.kl_divergence(q, p).sum(-1))
    assert torch.equal(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_vae_samples_in_training_and_uses_the_mean_in_eval():
    torch.manual_seed(0)
    vae = trainwise.create_model("vae", (6,), 0, hidden=[8], latent=2)
    x = torch.randn(3, 6)
    assert not torch.equal(vae(x)[0], vae(x)[0])  # reparameterised sample
    vae.eval()
    torch.testing.assert_close(vae(x)[0], vae.decode(vae.encode(x)))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(vae.sample(4, generator=g1), vae.sample(4, generator=g2))


@pytest.mark.parametrize("name", ["rnn", "transformer", "seq2seq"])
def test_padding_embedding_row_stays_zero_with_no_gradient(name):
    torch.manual_seed(0)
    if name == "seq2seq":
        model = trainwise.create_model(name, (6,), V, d_model=8, heads=2, layers=1)
        run = lambda x: model(x, x[:, :4])  # noqa: E731
    else:
        model = trainwise.create_model(name, (6,), 3, vocab_size=V, **({"d_model": 8, "heads": 2}
                                                                        if name == "transformer" else {}))
        run = model
    emb = model.embed
    assert torch.count_nonzero(emb.weight[0]) == 0
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    x = tokens(3, 6, [6, 2, 4])
    x[0, 1] = 0  # a pad in the middle too: still no gradient to the row
    run(x).pow(2).mean().backward()
    assert torch.count_nonzero(emb.weight.grad[0]) == 0
    assert torch.count_nonzero(emb.weight.grad[3:]) > 0
    opt.step()
    assert torch.count_nonzero(emb.weight[0]) == 0


def test_token_embedding_helper():
    emb = token_embedding(5, 3, pad_index=4)
    assert emb.padding_idx == 4 and torch.count_nonzero(emb.weight[4]) == 0
    assert token_embedding(5, 3, pad_index=None).padding_idx is None


@pytest.mark.parametrize(("cell", "bidirectional"), [("lstm", False), ("gru", True), ("rnn", True)])
def test_rnn_appended_padding_changes_nothing(cell, bidirectional):
    torch.manual_seed(0)
    model = trainwise.create_model("rnn", (6,), 3, vocab_size=V, cell=cell, bidirectional=bidirectional, hidden=8,
                                   layers=2).eval()
    x = tokens(3, 6, [6, 2, 4])
    longer = torch.cat([x, torch.zeros(3, 5, dtype=torch.long)], 1)
    torch.testing.assert_close(model(longer), model(x), atol=1e-6, rtol=0)
    # without packing (no pad token) the extra steps do change the result: packing is what makes it hold
    unpacked = trainwise.create_model("rnn", (6,), 3, vocab_size=V, cell=cell, bidirectional=bidirectional,
                                      hidden=8, layers=2, pad_index=None).eval()
    assert not torch.allclose(unpacked(longer), unpacked(x), atol=1e-4)


@pytest.mark.parametrize("pool", ["mean", "cls", "last"])
def test_transformer_appended_padding_changes_nothing(pool):
    torch.manual_seed(0)
    model = trainwise.create_model("transformer", (6,), 3, vocab_size=V, d_model=16, heads=2, pool=pool,
                                   positional="learned").eval()
    x = tokens(3, 6, [6, 2, 4])
    longer = torch.cat([x, torch.zeros(3, 4, dtype=torch.long)], 1)
    torch.testing.assert_close(model(longer), model(x), atol=1e-5, rtol=0)
    changed = x.clone()
    changed[1, 1] = 3 if int(x[1, 1]) != 3 else 4  # a real token does matter
    assert not torch.allclose(model(changed)[1], model(x)[1], atol=1e-4)


def test_rnn_lstm_init_orthogonal_with_forget_bias():
    model = trainwise.create_model("rnn", (6, 2), 1, cell="lstm", hidden=8)
    w = model.rnn.weight_hh_l0.detach()[:8]  # input gate block
    torch.testing.assert_close(w @ w.T, torch.eye(8), atol=1e-5, rtol=0)
    assert torch.equal(model.rnn.bias_ih_l0[8:16], torch.ones(8))
    assert torch.count_nonzero(model.rnn.bias_hh_l0) == 0


def test_drop_path_matches_the_former_inline_version():
    x = torch.randn(64, 3, 4, 4)
    dp = DropPath(0.25)
    torch.manual_seed(5)
    out = dp(x)
    torch.manual_seed(5)
    keep = torch.rand(64, 1, 1, 1) >= 0.25
    assert torch.equal(out, x * keep / 0.75)
    dropped = (out.flatten(1) == 0).all(1)
    assert 0 < int(dropped.sum()) < 64
    torch.testing.assert_close(out[~dropped], x[~dropped] / 0.75)
    dp.eval()
    assert dp(x) is x
    cnn = trainwise.create_model("cnn", (1, 8, 8), 3, width=4, drop_path=0.1)
    assert isinstance(cnn.stages[0].drop_path, DropPath) and cnn.stages[0].drop_path.p == 0.1


def test_init_gain_follows_the_activation():
    for act in ("relu", "tanh", "sigmoid"):
        assert gain_for(act) == pytest.approx(nn.init.calculate_gain(act))
    assert gain_for("leaky_relu") == pytest.approx(nn.init.calculate_gain("leaky_relu", 0.01))
    assert gain_for("gelu") == pytest.approx(math.sqrt(2))
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", (400,), 2, hidden=[400], act="leaky_relu", init="kaiming")
    expected = nn.init.calculate_gain("leaky_relu", 0.01) / math.sqrt(400)
    assert float(model.body[0].weight.detach().std()) == pytest.approx(expected, rel=0.02)
    ae = trainwise.create_model("autoencoder", (1, 8, 8), 0, channels=[16, 16], init="xavier", act="tanh")
    convt = next(m for m in ae.decoder if isinstance(m, nn.ConvTranspose2d))  # transposed convs are initialised too
    fan_in, fan_out = convt.weight.shape[1] * 9, convt.weight.shape[0] * 9
    assert float(convt.weight.detach().std()) == pytest.approx(5 / 3 * math.sqrt(2 / (fan_in + fan_out)), rel=0.1)


# ---- argument errors --------------------------------------------------------------------------------------------

BAD_ARGS = [
    ("rnn", (6, 2), {"cell": "lsmt"}, "unknown model.cell 'lsmt'.*did you mean 'lstm'"),
    ("rnn", (6, 2), {"hidden": 0}, "model.hidden=0"),
    ("rnn", (6, 2), {"dropout": 1.0}, "model.dropout=1.0"),
    ("rnn", (6, 2), {"vocab_size": V}, "token inputs"),
    ("rnn", (6,), {"vocab_size": V, "pad_index": V}, "model.pad_index=12"),
    ("rnn", (6,), {}, "feature sequences must have in_shape"),
    ("transformer", (6,), {"vocab_size": V, "d_model": 30, "heads": 4}, "divisible by model.heads"),
    ("transformer", (6,), {"vocab_size": V, "positional": "sinus"}, "did you mean 'sinusoidal'"),
    ("transformer", (6,), {"vocab_size": V, "pool": "max"}, "unknown model.pool"),
    ("transformer", (6,), {"vocab_size": V, "pool": "cls", "causal": True}, "use model.pool=last"),
    ("transformer", (6,), {"vocab_size": V, "max_len": 6, "pool": "cls"}, "exceed model.max_len=6"),
    ("transformer", (6,), {"vocab_size": V, "d_model": 12, "heads": 4, "positional": "rotary"}, "even head size"),
    ("transformer", (6,), {"vocab_size": V, "dropout": -0.1}, "model.dropout"),
    ("seq2seq", (6,), {"bos_index": 0}, "must differ"),
    ("seq2seq", (6, 2), {}, "token-id sources"),
    ("seq2seq", (6,), {"layers": 0}, "model.layers=0"),
    ("tcn", (6, 2), {"kernel_size": 1}, "model.kernel_size=1"),
    ("tcn", (6,), {}, "needs \\(T, F\\)"),
    ("autoencoder", (6,), {"latent": 0}, "model.latent=0"),
    ("autoencoder", (6,), {"style": "conv"}, "model.style=conv needs"),
    ("autoencoder", (6,), {"output": "softmax"}, "unknown model.output"),
    ("vae", (6,), {"hidden": [8, 0]}, "positive layer widths"),
    ("gan", (6,), {"style": "dcgan"}, "use model.style=mlp"),
    ("gan", (1, 8, 8), {"latent_dim": 0}, "model.latent_dim=0"),
    ("gan", (1, 8, 8), {"norm": "btch"}, "did you mean 'batch'"),
    ("simclr", (1, 8, 8), {"backbone": "resnet"}, "unknown model.backbone"),
    ("simclr", (6,), {"backbone": "cnn"}, "use model.backbone=mlp"),
    ("cnn", (1, 8, 8), {"drop_path": 1.0}, "model.drop_path=1.0"),
]


@pytest.mark.parametrize(("name", "shape", "kwargs", "match"), BAD_ARGS)
def test_bad_arguments_raise_one_line_errors(name, shape, kwargs, match):
    out_dim = V if name == "seq2seq" else 3
    with pytest.raises(TrainwiseError, match=match) as err:
        trainwise.create_model(name, shape, out_dim, **kwargs)
    assert "\n" not in str(err.value)


def test_runtime_length_and_generation_errors():
    model = trainwise.create_model("seq2seq", (6,), V, d_model=8, heads=2, layers=1, max_len=8)
    with pytest.raises(TrainwiseError, match="exceeds model.max_len=8"):
        model(tokens(1, 9), tokens(1, 3))
    with pytest.raises(TrainwiseError, match="beam_size=0"):
        model.generate(tokens(1, 6), max_len=4, beam_size=0)
    with pytest.raises(TrainwiseError, match="exceeds model.max_len=8"):
        model.generate(tokens(1, 6), max_len=9)
    with pytest.raises(TrainwiseError, match="seq2seq needs a vocabulary"):
        trainwise.create_model("seq2seq", (6,), 3)
    enc = trainwise.create_model("transformer", (6,), 2, vocab_size=V, positional="learned", max_len=8)
    with pytest.raises(TrainwiseError, match="exceeds model.max_len=8"):
        enc(tokens(1, 9))
