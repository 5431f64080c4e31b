"""Autoencoders: AE and VAE (models/autoencoder.py); reconstruction error as an anomaly score (digits-autoencoder)."""

from __future__ import annotations

import _common as c

import trainwise


def main() -> None:
    c.setup()
    epochs = int(c.pick(20, 6))
    held = [1, 7] if c.fast() else [1, 4, 7]
    aurocs = {}
    for k in held:
        # The digits-autoencoder preset: train on every digit but k; test mixes normal digits and held-out k's.
        cfg = trainwise.compose(preset="digits-autoencoder",
                                overrides=[f"data.holdout_class={k}", f"train.epochs={epochs}", "doctor.preflight=false"])
        summary = trainwise.runner.train(cfg, run_dir=None, quiet=True).summary
        aurocs[k] = summary["test/auroc"]
        c.say(f"held-out digit {k}: test AUROC of reconstruction error {aurocs[k]:.3f} "
              f"({', '.join(f'{m}={v:.4g}' for m, v in summary.items() if m.startswith('test/') and m != 'test/auroc')})")
    worst = min(aurocs.values())
    c.check("reconstruction error separates anomalies from normal samples", worst >= 0.8,
            f"MLP autoencoder (latent 8), {epochs} epochs, trained without digit k: AUROC of per-sample "
            f"reconstruction error, held-out k vs normal test digits: "
            + ", ".join(f"k={k}: {v:.3f}" for k, v in aurocs.items()) + " (0.5 = no separation)")


if __name__ == "__main__":
    main()
