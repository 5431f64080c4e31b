"""Data: loaders (in-memory and DataLoader paths), deterministic stratified splits, train-only preprocessing, sources."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import trainwise
from trainwise.data.loaders import DeviceDataLoader, InMemoryLoader, epoch_seed, make_loader
from trainwise.data.sources import from_arrays, load_source
from trainwise.data.splits import split_table
from trainwise.errors import TrainwiseError

CPU = torch.device("cpu")


def ids_dataset(n: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """x holds each sample's own index, so a batch tells which samples it contains."""
    x = torch.arange(n, dtype=torch.float32)[:, None]
    return x, torch.arange(n) % 3


def epoch_ids(loader, epoch: int) -> list[int]:
    loader.set_epoch(epoch)
    return [int(v) for x, _ in loader for v in x[:, 0].tolist()]


# ---- in-memory loader -----------------------------------------------------------------------------------------------

def test_in_memory_order_is_one_permutation_per_epoch_seeded_by_seed_and_epoch():
    x, y = ids_dataset(50)
    loader = InMemoryLoader(x, y, 8, shuffle=True, drop_last=False, seed=5, device=CPU)
    for epoch in range(3):
        ids = epoch_ids(loader, epoch)
        expected = torch.randperm(50, generator=torch.Generator().manual_seed(epoch_seed(5, epoch))).tolist()
        assert ids == expected
        assert sorted(ids) == list(range(50))  # every sample exactly once
    assert epoch_ids(loader, 0) != epoch_ids(loader, 1)
    assert epoch_ids(loader, 1) == epoch_ids(loader, 1)  # recomputable: no generator state carried over
    other = InMemoryLoader(x, y, 8, shuffle=True, drop_last=False, seed=6, device=CPU)
    assert epoch_ids(other, 1) != epoch_ids(loader, 1)
    # the order does not depend on the batch size (what makes accumulation comparable to a big batch)
    wide = InMemoryLoader(x, y, 32, shuffle=True, drop_last=False, seed=5, device=CPU)
    assert epoch_ids(wide, 2) == epoch_ids(loader, 2)


def test_epoch_seed_is_distinct_per_pair():
    seeds = {epoch_seed(s, e) for s in range(20) for e in range(20)}
    assert len(seeds) == 400


def test_in_memory_batches_len_and_drop_last():
    x, y = ids_dataset(50)
    keep = InMemoryLoader(x, y, 8, shuffle=True, drop_last=False, seed=0, device=CPU)
    assert len(keep) == 7
    sizes = [len(b) for b, _ in keep]
    assert sizes == [8] * 6 + [2] and len(sizes) == len(keep)
    drop = InMemoryLoader(x, y, 8, shuffle=True, drop_last=True, seed=0, device=CPU)
    assert len(drop) == 6
    ids = epoch_ids(drop, 0)
    assert len(ids) == 48 and len(set(ids)) == 48
    assert ids == epoch_ids(keep, 0)[:48]  # drop_last only drops the ragged tail of the same permutation
    with pytest.raises(TrainwiseError, match="fewer than one batch"):
        InMemoryLoader(x[:4], y[:4], 8, shuffle=True, drop_last=True, seed=0, device=CPU)


def test_in_memory_without_shuffle_is_in_order_and_labels_follow():
    x, y = ids_dataset(20)
    loader = InMemoryLoader(x, y, 6, shuffle=False, drop_last=False, seed=0, device=CPU)
    assert epoch_ids(loader, 0) == list(range(20)) == epoch_ids(loader, 3)
    shuffled = InMemoryLoader(x, y, 6, shuffle=True, drop_last=False, seed=0, device=CPU)
    for xb, yb in shuffled:
        assert torch.equal(yb, xb[:, 0].long() % 3)  # x and y gathered with the same indices


# ---- DataLoader path ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataloader_path_same_samples_and_deterministic(num_workers):
    x, y = ids_dataset(40)
    loader = make_loader((x, y), 8, shuffle=True, drop_last=False, seed=3, device=CPU, mode="dataloader",
                         num_workers=num_workers, persistent_workers=False)
    assert isinstance(loader, DeviceDataLoader)
    assert len(loader) == 5
    e0, e0_again, e1 = epoch_ids(loader, 0), epoch_ids(loader, 0), epoch_ids(loader, 1)
    assert sorted(e0) == sorted(e1) == list(range(40))  # the same sample set, each once
    assert e0 == e0_again  # deterministic per (seed, epoch)
    assert e0 != e1
    for xb, yb in loader:
        assert torch.equal(yb, xb[:, 0].long() % 3)
    if num_workers:  # worker processes do not change the order
        single = make_loader((x, y), 8, shuffle=True, drop_last=False, seed=3, device=CPU, mode="dataloader")
        assert epoch_ids(single, 1) == e1


class NoisyIds(torch.utils.data.Dataset):
    """A Dataset that draws random numbers in ``__getitem__`` from all three global RNGs (like random augmentation)."""

    def __len__(self) -> int:
        return 40

    def __getitem__(self, i: int):
        import random

        noise = torch.rand(()) + float(np.random.rand()) + random.random()
        return torch.tensor([float(i), float(noise)]), i % 3


def _noisy_epoch(loader, epoch: int, start: int = 0) -> list[list[float]]:
    loader.set_epoch(epoch, start)
    return [row for x, _ in loader for row in x.tolist()]


def test_dataloader_path_random_getitem_is_a_function_of_seed_and_epoch_only():
    """Randomness inside a user's __getitem__ does not depend on workers, on persistence, on what was loaded before
    or on where an epoch was resumed; loading in this process leaves the training RNGs untouched."""
    def loader(workers: int, persistent: bool = False):
        return make_loader(NoisyIds(), 8, shuffle=True, drop_last=False, seed=5, device=CPU, num_workers=workers,
                           persistent_workers=persistent if workers else None)

    torch.manual_seed(123)
    np.random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy())
    single = loader(0)
    e1 = _noisy_epoch(single, 1)
    assert torch.equal(torch.get_rng_state(), before[0]) and np.array_equal(np.random.get_state()[1], before[1])
    assert _noisy_epoch(single, 0) != e1 and _noisy_epoch(single, 1) == e1  # epoch 0 first changes nothing
    assert sorted(int(r[0]) for r in e1) == list(range(40))
    assert len({r[1] for r in e1}) == 40  # samples get different draws
    assert _noisy_epoch(loader(2), 1) == e1
    persistent = loader(2, persistent=True)
    _noisy_epoch(persistent, 0)  # workers already advanced their RNGs
    assert _noisy_epoch(persistent, 1) == e1
    assert _noisy_epoch(single, 1, start=2) == e1[16:]  # resumed at batch 2: the same draws as uninterrupted


def test_dataloader_path_drop_last_and_dataset_input():
    x, y = ids_dataset(30)
    ds = torch.utils.data.TensorDataset(x, y)
    loader = make_loader(ds, 8, shuffle=True, drop_last=True, seed=0, device=CPU)
    assert isinstance(loader, DeviceDataLoader)
    assert len(loader) == 3
    ids = epoch_ids(loader, 0)
    assert len(ids) == 24 and len(set(ids)) == 24
    with pytest.raises(TrainwiseError):
        make_loader(ds, 8, shuffle=True, drop_last=False, seed=0, device=CPU, mode="memory")


def test_make_loader_picks_in_memory_for_tensors():
    x, y = ids_dataset(10)
    assert isinstance(make_loader((x, y), 4, shuffle=True, drop_last=False, seed=0, device=CPU), InMemoryLoader)
    assert isinstance(make_loader((x, y), 4, shuffle=True, drop_last=False, seed=0, device=CPU, mode="memory"),
                      InMemoryLoader)


def test_fit_through_the_dataloader_path():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    data = {"train": (x[:64], y[:64]), "val": (x[64:], y[64:])}

    def run():
        torch.manual_seed(0)
        model = trainwise.create_model("mlp", (8,), 2, hidden=[8])
        return trainwise.fit(model, data, run_dir=None, quiet=True, record_step_losses=True, device="cpu",
                             epochs=2, **{"data.loader": "dataloader", "data.batch_size": 16})

    a, b = run(), run()
    assert len(a.step_losses) == 8
    assert a.step_losses == b.step_losses


# ---- splits ---------------------------------------------------------------------------------------------------------

def _digits_with_ids():
    table = load_source("digits")
    n = len(table.x)
    ids = np.arange(n, dtype=np.float32)
    return from_arrays(ids[:, None], table.y), table.y


def _ids(split) -> np.ndarray:
    return split.x[:, 0].numpy().astype(np.int64)


def test_splits_are_deterministic_disjoint_and_cover_everything():
    table, _ = _digits_with_ids()
    a = split_table(table, 0, 0.1, 0.2, standardize=False)
    b = split_table(table, 0, 0.1, 0.2, standardize=False)
    c = split_table(table, 1, 0.1, 0.2, standardize=False)
    for part in ("train", "val", "test"):
        assert np.array_equal(_ids(getattr(a, part)), _ids(getattr(b, part)))
    assert not np.array_equal(np.sort(_ids(a.test)), np.sort(_ids(c.test)))
    tr, va, te = set(_ids(a.train)), set(_ids(a.val)), set(_ids(a.test))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == set(range(len(table.x)))
    n = len(table.x)
    assert len(te) == pytest.approx(0.2 * n, abs=1) and len(va) == pytest.approx(0.1 * n, abs=1)


def test_splits_are_stratified():
    table, y = _digits_with_ids()
    s = split_table(table, 0, 0.1, 0.2, standardize=False)
    props = np.bincount(y, minlength=10) / len(y)
    for part in (s.train, s.val, s.test):
        counts = np.bincount(part.y.numpy(), minlength=10)
        assert np.all(np.abs(counts - props * len(part)) <= 1.0), counts
        assert torch.equal(part.y, torch.from_numpy(y[_ids(part)]))  # labels travel with their rows


def test_standardisation_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(3.0, 2.0, size=(n, 5)).astype(np.float32)
    y = (rng.random(n) < 0.4).astype(np.int64)
    # which rows end in val/test depends only on (n, y, seed): find them with an id column
    layout = split_table(from_arrays(np.arange(n, dtype=np.float32)[:, None], y), 0, 0.1, 0.2, standardize=False)
    held_out = np.concatenate([_ids(layout.val), _ids(layout.test)])
    train_rows = _ids(layout.train)

    base = split_table(from_arrays(x, y), 0, 0.1, 0.2, standardize=True)
    x_mod = x.copy()
    x_mod[held_out] = x_mod[held_out] * 1000.0 + 5e4  # drastically different held-out rows
    mod = split_table(from_arrays(x_mod, y), 0, 0.1, 0.2, standardize=True)

    assert mod.preprocess.mean == base.preprocess.mean
    assert mod.preprocess.std == base.preprocess.std
    np.testing.assert_allclose(base.preprocess.mean, x[train_rows].astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(base.preprocess.std, x[train_rows].astype(np.float64).std(0), rtol=1e-5)
    # the train split is standardised (mean 0, std 1) and apply() uses the stored train statistics
    assert torch.allclose(mod.train.x.mean(0), torch.zeros(5), atol=1e-5)
    mean, std = np.asarray(mod.preprocess.mean), np.asarray(mod.preprocess.std)
    expected_test = (x_mod[_ids(layout.test)] - mean) / std
    np.testing.assert_allclose(mod.test.x.numpy(), expected_test, rtol=1e-5)
    np.testing.assert_allclose(mod.preprocess.apply(x_mod[:3]), (x_mod[:3] - mean) / std, rtol=1e-5)


def test_image_standardisation_is_one_scalar_from_train():
    table = load_source("digits")
    s = split_table(table, 0, 0.1, 0.2, standardize=True)
    p = s.preprocess
    assert p.kind == "image" and len(p.mean) == len(p.std) == 1
    assert s.train.x.shape[1:] == (1, 8, 8)
    assert float(s.train.x.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(s.train.x.std()) == pytest.approx(1.0, abs=1e-3)


# ---- CSV ------------------------------------------------------------------------------------------------------------

def _write_csv(path) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 60
    num = rng.normal(10.0, 3.0, size=n).round(3)
    num[[3, 17, 42]] = np.nan
    color = np.array(["red", "green", "blue"], dtype=object)[rng.integers(0, 3, size=n)]
    color[5] = None
    df = pd.DataFrame({"id": np.arange(n), "num": num, "color": color,
                       "label": np.where(rng.random(n) < 0.5, "yes", "no")})
    df.to_csv(path, index=False)
    return df


def test_csv_categoricals_encoded_and_missing_imputed_with_train_median(tmp_path):
    df = _write_csv(tmp_path / "t.csv")
    table = load_source("csv", str(tmp_path / "t.csv"), "label")
    assert table.task == "classification" and table.class_names == ["no", "yes"]
    assert table.feature_names == ["id", "num", "color"]
    assert table.cat_columns == ["color"] and table.cat_categories == [["blue", "green", "red"]]
    assert table.cat_cardinalities == [4]  # 3 categories + the missing/unseen code 0
    codes = table.x[:, 2]
    expected = df["color"].map({"blue": 1, "green": 2, "red": 3}).fillna(0).to_numpy()
    assert np.array_equal(codes, expected)
    assert table.missing == {"num": 3, "color": 1}

    s = split_table(table, 0, 0.2, 0.2, standardize=False)
    assert s.missing == {"num": 3, "color": 1}
    train_ids = _ids(s.train)
    median = float(np.nanmedian(df["num"].to_numpy()[train_ids]))
    assert s.preprocess.median[:2] == pytest.approx([float(np.median(train_ids)), median])
    assert median != pytest.approx(float(np.nanmedian(df["num"])), abs=1e-9)  # not the whole-data median
    for part in (s.train, s.val, s.test):
        assert not torch.isnan(part.x).any()
        for row, i in zip(part.x, _ids(part)):
            if np.isnan(df["num"][i]):
                assert float(row[1]) == pytest.approx(median)
            else:
                assert float(row[1]) == pytest.approx(df["num"][i], rel=1e-6)

    # standardised: categorical codes pass through untouched, numeric columns use train statistics after imputing
    z = split_table(table, 0, 0.2, 0.2, standardize=True)
    assert z.preprocess.num_numeric == 2
    assert set(torch.unique(z.train.x[:, 2]).tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert torch.allclose(z.train.x[:, :2].mean(0), torch.zeros(2), atol=1e-5)


def test_csv_errors(tmp_path):
    _write_csv(tmp_path / "t.csv")
    with pytest.raises(TrainwiseError, match="no column 'lable'.*did you mean 'label'"):
        load_source("csv", str(tmp_path / "t.csv"), "lable")
    with pytest.raises(TrainwiseError, match="does not exist"):
        load_source("csv", str(tmp_path / "missing.csv"), "label")


# ---- embedded and .npz sources --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "shape", "task", "classes"), [
    ("digits", (1797, 1, 8, 8), "classification", 10),
    ("breast_cancer", (569, 30), "classification", 2),
    ("wine", (178, 13), "classification", 3),
    ("iris", (150, 4), "classification", 3),
    ("diabetes", (442, 10), "regression", 0),
])
def test_embedded_sources(name, shape, task, classes):
    t = load_source(name)
    assert t.x.shape == shape and t.x.dtype == np.float32
    assert t.task == task and len(t.y) == shape[0]
    assert t.kind == ("image" if name == "digits" else "tabular")
    if task == "classification":
        assert t.y.dtype == np.int64 and len(t.class_names) == classes
        assert set(np.unique(t.y)) == set(range(classes))
    else:
        assert t.y.dtype == np.float32 and t.class_names == []
    s = split_table(t, 0, 0.1, 0.2)
    assert s.task == task and s.num_classes == classes
    assert len(s.train) + len(s.val) + len(s.test) == shape[0]


def test_npz_source(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 4, size=40)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    t = load_source("npz", str(tmp_path / "d.npz"))
    assert t.x.shape == (40, 6) and t.kind == "tabular" and t.task == "classification"
    assert np.array_equal(t.x, x) and np.array_equal(t.y, y)

    np.savez(tmp_path / "img.npz", x=rng.normal(size=(30, 1, 5, 5)), y=rng.normal(size=30))
    t = load_source("npz", str(tmp_path / "img.npz"))
    assert t.kind == "image" and t.task == "regression" and t.x.shape == (30, 1, 5, 5)

    np.savez(tmp_path / "bad.npz", features=x, y=y)
    with pytest.raises(TrainwiseError, match="'x' and 'y'"):
        load_source("npz", str(tmp_path / "bad.npz"))


def test_unknown_source_suggests():
    with pytest.raises(TrainwiseError, match="did you mean 'digits'"):
        load_source("digit")
