"""Paradigms on the shared loop: loss definitions against hand computations, and small end-to-end fits with tiny
inline models (the registered models have their own tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import trainwise
from trainwise.data.splits import split_table
from trainwise.data.synthetic import adding, order, seq_reverse, sine
from trainwise.data.table import Table
from trainwise.tasks.contrastive import nt_xent
from trainwise.tasks.distillation import Distillation
from trainwise.tasks.seq2seq import BOS, EOS, PAD, decoder_input

BASE = {"device": "cpu", "precision": "32", "seed": 0, "early_stopping": False}


def digits_table() -> Table:
    d = load_digits()
    return Table(d.data.reshape(-1, 1, 8, 8).astype(np.float32), d.target.astype(np.int64), "classification",
                 kind="image", class_names=[str(i) for i in range(10)])


# ---- loss definitions -------------------------------------------------------------------------------------------


def test_nt_xent_matches_a_hand_computed_value():
    torch.manual_seed(0)
    z1, z2 = torch.randn(3, 4), torch.randn(3, 4)
    tau = 0.5
    z = [v / v.norm() for v in torch.cat([z1, z2])]
    total = 0.0
    for i in range(6):  # anchor i; its positive is (i + 3) mod 6; the denominator excludes i itself
        pos = (i + 3) % 6
        num = math.exp(float(z[i] @ z[pos]) / tau)
        den = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(6) if k != i)
        total += -math.log(num / den)
    assert nt_xent(z1, z2, tau).item() == pytest.approx(total / 6, rel=1e-5)


def test_nt_xent_is_lower_for_aligned_views():
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    assert nt_xent(z, z + 0.01 * torch.randn_like(z), 0.5) < nt_xent(z, torch.randn(8, 16), 0.5)


def test_distillation_loss_is_alpha_t2_kl_plus_ce():
    torch.manual_seed(0)
    s, t, y = torch.randn(5, 4), torch.randn(5, 4), torch.randint(0, 4, (5,))
    task = Distillation(4, 0.0, "unused", temperature=3.0, alpha=0.7)
    task.teacher = lambda x: t  # type: ignore[assignment]
    loss, _ = task.train_loss(lambda x: s, torch.zeros(5, 1), y)  # type: ignore[arg-type]
    p_t, p_s = F.softmax(t / 3, 1), F.softmax(s / 3, 1)
    kl = (p_t * (p_t.log() - p_s.log())).sum(1).mean()
    expected = 0.7 * 9 * kl + 0.3 * F.cross_entropy(s, y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_decoder_input_is_targets_shifted_right_after_bos():
    tgt = torch.tensor([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
    assert decoder_input(tgt).tolist() == [[BOS, 5, 6, EOS], [BOS, 7, EOS, PAD]]


# ---- synthetic data -----------------------------------------------------------------------------------------------


def test_adding_problem_mean_predictor_scores_one_sixth():
    t = adding(n=20000, length=50)
    assert t.x.shape == (20000, 50, 2) and (t.x[:, :, 1].sum(1) == 2).all()
    assert np.mean((t.y - t.y.mean()) ** 2) == pytest.approx(1 / 6, rel=0.03)


def test_order_labels_depend_on_marker_order_and_are_balanced():
    t = order(n=2000, length=12)
    a, b = t.vocab_size - 2, t.vocab_size - 1
    first_a = np.array([list(row).index(a) < list(row).index(b) for row in t.x])
    assert (first_a == t.y.astype(bool)).all() and 0.45 < t.y.mean() < 0.55


def test_seq_reverse_targets_are_reversed_sources_with_eos():
    t = seq_reverse(n=50, length=8)
    for src, tgt in zip(t.x, t.y):
        k = int((src != PAD).sum())
        assert list(tgt[:k]) == list(src[:k][::-1]) and tgt[k] == EOS and (tgt[k + 1:] == PAD).all()


def test_sine_windows_and_targets_are_deterministic():
    a, b = sine(n=10), sine(n=10)
    assert a.x.shape == (10, 32, 1) and np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)


def test_holdout_class_goes_to_test_only_and_preprocessing_never_sees_it():
    table = digits_table()
    s = split_table(table, 0, 0.1, 0.2, True, holdout_class=3)
    assert int(s.train.y.sum()) == 0 and int(s.val.y.sum()) == 0  # type: ignore[union-attr]
    assert int(s.test.y.sum()) == int((table.y == 3).sum())  # type: ignore[union-attr]
    normal = table.x[table.y != 3]
    plain = split_table(Table(normal, table.y[table.y != 3], "classification", kind="image"), 0, 0.1, 0.2)
    assert s.preprocess.mean == plain.preprocess.mean  # statistics from normal training samples only


# ---- small end-to-end fits through the shared loop ----------------------------------------------------------------


class TinyAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
        self.dec = nn.Linear(16, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x)).view_as(x)


def test_autoencoder_paradigm_scores_the_held_out_digit_as_anomalous():
    splits = split_table(digits_table(), 0, 0.1, 0.2, True, holdout_class=1)
    torch.manual_seed(0)
    r = trainwise.fit(TinyAE(), splits, run_dir=None, epochs=15, **BASE,
                      **{"paradigm.name": "autoencoder", "data.holdout_class": 1, "optim.lr": 3e-3})
    assert r.summary["test/auroc"] > 0.7
    assert r.history[-1]["train/loss"] < r.history[0]["train/loss"]


class TinyGAN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 8
        self.generator = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
        self.discriminator = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)


def test_gan_steps_generator_and_discriminator_with_their_own_optimizers(tmp_path):
    splits = split_table(digits_table(), 0, 0.1, 0.2, "range")
    torch.manual_seed(0)
    model = TinyGAN()
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    r = trainwise.fit(model, splits, run_dir=tmp_path / "gan", epochs=1, **BASE, **{"paradigm.name": "gan"})
    assert all(not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters()))
    assert {"val/d_real_acc", "val/d_fooled"} <= set(r.history[0])
    assert 0 <= r.summary["gan/classes_present"] <= 10 and (tmp_path / "gan" / "samples.png").is_file()
    # the discriminator's optimizer state travels in the checkpoint
    from trainwise.train.checkpoint import latest_valid, read_checkpoint

    data = read_checkpoint(latest_valid(tmp_path / "gan" / "checkpoints"))  # type: ignore[arg-type]
    assert any(k.startswith("task.d_opt.state.") for k in data.tensors["extra"])


def test_evaluation_leaves_the_training_rng_untouched():
    from trainwise.tasks.contrastive import Contrastive

    class Enc(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    enc, x = Enc(), torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    state = torch.get_rng_state()
    Contrastive().eval_batch(enc, x, torch.zeros(8))
    assert torch.equal(state, torch.get_rng_state())


SMALL = {
    "digits-gan": ["model.width=8", "model.latent_dim=8"],
    "digits-vae": ["model.hidden=[32]", "model.latent=4"],
    "digits-simclr": ["model.width=8", "model.feature_dim=16", "model.proj_dim=8", "data.batch_size=64"],
    "seq-reverse": ["data.options.n=400", "model.d_model=16", "model.layers=1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(SMALL))
def test_paradigm_resumes_bit_exactly_from_a_mid_epoch_checkpoint(preset: str, tmp_path):
    from trainwise.config import compose
    from trainwise.runner import resume, train
    from trainwise.train.checkpoint import list_checkpoints

    cfg = compose(preset=preset, overrides=["device=cpu", "train.epochs=2", "checkpoint.every_steps=3",
                                            "checkpoint.keep=100", "doctor.preflight=false", *SMALL[preset]])
    run = tmp_path / "run"
    train(cfg, run_dir=run, quiet=True)
    ref = {f: (run / f).read_bytes() for f in ("final.safetensors", "metrics.jsonl")}
    ckpts = list_checkpoints(run / "checkpoints")
    assert len(ckpts) >= 3
    import shutil

    for c in ckpts[2:]:  # crash after the second mid-epoch checkpoint
        shutil.rmtree(c)
    for f in ("final.safetensors", "summary.json", "best.safetensors"):
        (run / f).unlink(missing_ok=True)
    resume(run, quiet=True)
    assert (run / "final.safetensors").read_bytes() == ref["final.safetensors"]
    assert (run / "metrics.jsonl").read_bytes() == ref["metrics.jsonl"]


def test_multilabel_trains_with_bce_and_beats_the_all_negative_predictor(tmp_path):
    from trainwise.config import compose
    from trainwise.deploy.predict import predict_run
    from trainwise.runner import train
    from trainwise.tasks.multilabel import MultiLabel

    out, y = torch.randn(4, 3), torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    assert MultiLabel(3).loss(out, y).item() == pytest.approx(F.binary_cross_entropy(out.sigmoid(), y).item(), rel=1e-5)
    cfg = compose(preset="multilabel-mlp", overrides=["device=cpu", "train.epochs=10"])
    r = train(cfg, run_dir=tmp_path / "run", quiet=True)
    assert r.summary["task"] == "multilabel" and r.summary["test/f1_macro"] > 0.6
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).poisson(3, (5, 20)).astype(np.float32))
    dest = predict_run(tmp_path / "run", tmp_path / "x.npz")
    header = dest.read_text().splitlines()[0].split(",")
    assert header[:2] == ["label_0", "prob_0"] and len(header) == 10


def test_evaluate_and_report_work_on_a_paradigm_run(tmp_path):
    from trainwise.checkup.report import write_report
    from trainwise.config import compose
    from trainwise.runner import evaluate_run, train

    cfg = compose(preset="digits-vae", overrides=["device=cpu", "train.epochs=2", "model.hidden=[32]"])
    r = train(cfg, run_dir=tmp_path / "run", quiet=True)
    again = evaluate_run(tmp_path / "run", "test")
    assert again["elbo"] == pytest.approx(r.summary["test/elbo"], rel=1e-6)
    html = write_report(tmp_path / "run").read_text()
    assert "no prediction plot for a vae run" in html
