"""What a config builds before training: its data splits (``load_data``) and its untrained model (``build_model``).

Training (``runner.train``), the commands on finished runs (``reopen``, ``deploy/``, ``checkup/``) and ``tune`` all
construct data and models through these two functions, so a run reopened later sees exactly the data it was trained on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from trainwise.data.images import load_images
from trainwise.data.npy import load_npy
from trainwise.data.sources import load_source
from trainwise.data.splits import Preprocess, Split, Splits, class_selection, fraction_positions, split_table
from trainwise.models import create_model, get_spec


def load_data(cfg: DictConfig, quiet: bool = False) -> Splits:
    """The train/val/test splits a config's ``data`` section describes, rebuilt deterministically from its seed.
    ``quiet``: no progress bar while an image folder is decoded (``train --quiet``)."""
    d = cfg.data
    # npy/images apply data.classes / holdout_class / label_fraction to row indices: the samples stay in the file
    pick = {"classes": list(d.classes) if d.classes is not None else None, "holdout_class": d.holdout_class,
            "label_fraction": d.label_fraction}
    if d.source == "npy":  # larger than memory: Dataset splits over a memory map (data/npy.py)
        return load_npy(str(d.path), d.task, cfg.seed, d.val_fraction, d.test_fraction, d.standardize, **pick)
    if d.source == "images":  # decoded once into a uint8 memory-mapped cache (data/images.py)
        splits, report = load_images(str(d.path), cfg.seed, d.val_fraction, d.test_fraction, d.standardize,
                                     d.image_size, d.channels, d.on_bad_file, d.cache_dir,
                                     quiet=quiet, **pick)  # a decode bar when stderr is a terminal
        splits.report = report.to_dict()
        return splits
    if d.source == "text":  # tokenized once into a cached id matrix, batches padded to their longest (data/text.py)
        from trainwise.data.text import load_text

        return load_text(cfg)
    table = load_source(d.source, d.path, d.target, d.task,
                        cast(dict[str, Any], OmegaConf.to_container(d.options, resolve=True)))
    # A GAN's generator ends in tanh: its real images are scaled to [-1, 1] instead of standardised.
    scale: bool | str = "range" if (cfg.paradigm.name == "gan" and d.standardize and table.kind == "image") \
        else d.standardize
    if d.classes is not None:
        table = select_classes(table, list(d.classes))
    splits = split_table(table, cfg.seed, d.val_fraction, d.test_fraction, scale, d.holdout_class)
    if d.label_fraction < 1.0:
        splits.train = subsample(splits.train, d.label_fraction, cfg.seed, stratify=splits.task == "classification")
    return splits


def select_classes(table: Any, classes: list[int]) -> Any:
    """Keep the samples of ``classes`` and relabel them 0..k-1 in the given order (e.g. digits 5–9 → 0–4)."""
    keep, relabel, names = class_selection(table.y, classes, table.class_names, table.task)
    return replace(table, x=table.x[keep], y=relabel[table.y[keep]], class_names=names,
                   description=table.description + f"; classes {classes} only")


def subsample(split: Any, fraction: float, seed: int, stratify: bool) -> Any:
    """A deterministic (stratified) fraction of a split: the few-label regime of transfer learning."""
    keep = fraction_positions(split.y.numpy(), fraction, seed, stratify)
    return Split(split.x[keep], split.y[keep])


def build_model(cfg: DictConfig, prep: Preprocess, num_classes: int) -> torch.nn.Module:
    """The (untrained) model ``cfg.model`` names, sized for the data ``prep`` describes."""
    args: dict[str, Any] = OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[assignment]
    name = args.pop("name")
    args.pop("init_from", None)  # applied by train() after construction (see init_weights)
    args.pop("init_strict", None)
    args.pop("init_prefix", None)
    if name == "mlp" and prep.cat_categories and "cat_cardinalities" not in args:
        args["cat_cardinalities"] = [len(c) + 1 for c in prep.cat_categories]
    spec_args = get_spec(name).arguments()
    if prep.vocab_size and "vocab_size" in spec_args and "vocab_size" not in args:  # token inputs: ids 0..V-1
        args["vocab_size"] = prep.vocab_size
    out_dim = {"classification": num_classes, "multilabel": len(prep.class_names),
               "seq2seq": prep.vocab_size}.get(prep.task, 1)
    if cfg.data.holdout_class is not None:
        out_dim = 1  # anomaly runs reconstruct inputs; the class count is not an output width
    return create_model(name, prep.input_shape, out_dim, **args)
