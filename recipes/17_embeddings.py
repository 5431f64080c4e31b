"""Embeddings: nn.Embedding with padding_idx (blocks.token_embedding) and categorical columns in the mlp."""

from __future__ import annotations

import _common as c
import torch
import torch.nn.functional as F

from trainwise.models.blocks import token_embedding


def main() -> None:
    c.setup()
    vocab, dim, pad = 20, 8, 0
    emb = token_embedding(vocab, dim, pad)
    ids = torch.tensor([[5, 3, 7, 0, 0], [1, 2, 0, 0, 0]])  # right-padded with PAD = 0
    lookup = emb(ids)
    onehot = F.one_hot(ids, vocab).float() @ emb.weight  # (B, T, V) × (V, D)
    diff = (lookup - onehot).abs().max().item()
    c.say(f"token_embedding({vocab}, {dim}, pad_index={pad}): ids {tuple(ids.shape)} → {tuple(lookup.shape)}")
    c.check("an embedding lookup equals one-hot × E", diff < 1e-6,
            f"E[ids] vs one_hot(ids) @ E on a (2,5) batch: max |diff| {diff:.1e}; the lookup skips the "
            f"{vocab}-wide one-hot matmul")

    opt = torch.optim.SGD(emb.parameters(), lr=1.0)
    start_pad = emb.weight[pad].abs().max().item()
    (emb(ids) ** 2).sum().backward()
    grad_pad = emb.weight.grad[pad].abs().max().item()
    grad_used = emb.weight.grad[5].abs().max().item()
    opt.step()
    after_pad = emb.weight[pad].abs().max().item()
    c.check("the padding row stays zero and receives no gradient", start_pad == 0 and grad_pad == 0
            and after_pad == 0 and grad_used > 0,
            f"pad row max |value| {start_pad:g} at init, gradient {grad_pad:g} though PAD appears {(ids == pad).sum()} times in the "
            f"batch, {after_pad:g} after an SGD step (a used row's gradient: {grad_used:.2f})")


if __name__ == "__main__":
    main()
