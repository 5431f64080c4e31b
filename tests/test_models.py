"""Model registry and the built-in models: creation, argument checking, shapes, norms, embeddings, initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import trainwise
from trainwise.errors import TrainwiseError
from trainwise.models import get_spec, list_models


def test_registry_lists_and_creates():
    assert {"cnn", "mlp"} <= set(list_models())
    assert list_models("m*") == ["mlp"]
    assert trainwise.list_models is list_models
    assert isinstance(trainwise.create_model("mlp", (4,), 3), nn.Module)
    assert isinstance(trainwise.create_model("cnn", [1, 8, 8], 10), nn.Module)
    args = get_spec("cnn").arguments()
    assert {"width", "stages", "blocks", "norm", "act", "dropout", "drop_path", "init"} <= args.keys()
    assert "in_shape" not in args and "out_dim" not in args


def test_unknown_model_suggests():
    with pytest.raises(TrainwiseError, match="unknown model 'mpl'.*did you mean 'mlp'"):
        trainwise.create_model("mpl", (4,), 3)


def test_unknown_argument_suggests():
    with pytest.raises(TrainwiseError, match="no argument 'hiden'.*did you mean 'hidden'"):
        trainwise.create_model("mlp", (4,), 3, hiden=[8])
    with pytest.raises(TrainwiseError, match="no argument 'widht'.*did you mean 'width'"):
        trainwise.create_model("cnn", (1, 8, 8), 10, widht=8)


@pytest.mark.parametrize(("name", "kwargs"), [
    ("cnn", {"width": "wide"}),
    ("cnn", {"width": 8.5}),
    ("cnn", {"stages": True}),  # a bool is not an int here
    ("mlp", {"hidden": "256"}),
    ("mlp", {"dropout": "0.1"}),
    ("mlp", {"cat_cardinalities": 3}),
])
def test_wrong_argument_type(name, kwargs):
    shape = (1, 8, 8) if name == "cnn" else (4,)
    with pytest.raises(TrainwiseError, match="wrong type"):
        trainwise.create_model(name, shape, 3, **kwargs)


def test_arguments_are_coerced_where_safe():
    m = trainwise.create_model("mlp", (4,), 3, hidden=(8, 8), dropout=0)  # tuple → list, int → float
    assert isinstance(m, nn.Module)
    assert trainwise.create_model("mlp", (4,), 3, cat_cardinalities=None) is not None


def test_cnn_output_shape():
    torch.manual_seed(0)
    model = trainwise.create_model("cnn", (1, 8, 8), 10)
    assert model(torch.randn(8, 1, 8, 8)).shape == (8, 10)
    grey = trainwise.create_model("cnn", (8, 8), 10, width=8)  # (H, W) means one channel
    assert grey(torch.randn(8, 1, 8, 8)).shape == (8, 10)
    deep = trainwise.create_model("cnn", (3, 16, 16), 5, width=8, stages=3, blocks=2, dropout=0.2, drop_path=0.1)
    assert deep(torch.randn(4, 3, 16, 16)).shape == (4, 5)


def test_mlp_output_shape_and_flattening():
    model = trainwise.create_model("mlp", (1, 8, 8), 10, hidden=[16])
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    model = trainwise.create_model("mlp", (6,), 1, hidden=[])
    assert model(torch.randn(5, 6)).shape == (5, 1)


def test_mlp_with_categorical_embeddings():
    torch.manual_seed(0)
    cards = [4, 10]
    model = trainwise.create_model("mlp", (5,), 3, hidden=[16], cat_cardinalities=cards)  # 3 numeric + 2 codes
    assert len(model.embeddings) == 2
    assert [e.num_embeddings for e in model.embeddings] == cards
    dims = [e.embedding_dim for e in model.embeddings]
    assert model.body[0].in_features == 3 + sum(dims)
    x = torch.cat([torch.randn(7, 3), torch.randint(0, 4, (7, 1)).float(), torch.randint(0, 10, (7, 1)).float()], 1)
    out = model(x)
    assert out.shape == (7, 3)
    out.sum().backward()
    assert model.embeddings[0].weight.grad is not None
    # the codes select embedding rows: changing a code changes the output, the numeric part is used as is
    x2 = x.clone()
    x2[:, 3] = (x2[:, 3] + 1) % 4
    assert not torch.allclose(model(x2), out)
    with pytest.raises(IndexError):
        model(torch.cat([x[:, :4], torch.full((7, 1), 10.0)], 1))  # code out of range


@pytest.mark.parametrize("norm", ["batch", "layer", "group", "instance", "none"])
def test_every_cnn_norm_trains(norm):
    torch.manual_seed(0)
    model = trainwise.create_model("cnn", (1, 8, 8), 10, width=8, norm=norm)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    out = model(x)
    assert out.shape == (8, 10) and torch.isfinite(out).all()
    nn.functional.cross_entropy(out, y).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert model(x[:1]).shape == (1, 10)  # eval with batch 1 works for every norm
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all((c.bias is not None) == (norm == "none") for c in convs if c.kernel_size == (3, 3))


@pytest.mark.parametrize("norm", ["batch", "layer", "group", "instance", "none"])
def test_every_mlp_norm_works(norm):
    model = trainwise.create_model("mlp", (6,), 2, hidden=[8], norm=norm)
    assert model(torch.randn(4, 6)).shape == (4, 2)


def test_unknown_norm_activation_init():
    with pytest.raises(TrainwiseError, match="unknown norm 'btch'.*did you mean 'batch'"):
        trainwise.create_model("cnn", (1, 8, 8), 10, norm="btch")
    with pytest.raises(TrainwiseError, match="unknown activation"):
        trainwise.create_model("mlp", (4,), 3, act="relu6")
    with pytest.raises(TrainwiseError, match="unknown init 'kaiming_'.*did you mean 'kaiming'"):
        trainwise.create_model("mlp", (4,), 3, init="kaiming_")


def _std(t: torch.Tensor) -> float:
    return float(t.detach().double().std())


def test_kaiming_init_std():
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", (64,), 10, hidden=[256, 256], init="kaiming")
    first, second = model.body[0], model.body[3]
    assert _std(first.weight) == pytest.approx(math.sqrt(2 / 64), rel=0.1)
    assert _std(second.weight) == pytest.approx(math.sqrt(2 / 256), rel=0.1)
    assert torch.count_nonzero(first.bias) == 0 and torch.count_nonzero(second.bias) == 0
    cnn = trainwise.create_model("cnn", (1, 8, 8), 10, width=32, norm="batch", init="kaiming")
    conv = cnn.stages[0].conv1  # 32 → 32, 3×3: fan_in = 288
    assert _std(conv.weight) == pytest.approx(math.sqrt(2 / 288), rel=0.1)


def test_xavier_and_orthogonal_init():
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", (128,), 10, hidden=[256], act="tanh", init="xavier")
    gain = 5 / 3
    assert _std(model.body[0].weight) == pytest.approx(gain * math.sqrt(2 / (128 + 256)), rel=0.1)
    # kaiming on a saturating activation falls back to Xavier with that activation's gain
    model = trainwise.create_model("mlp", (128,), 10, hidden=[256], act="tanh", init="kaiming")
    assert _std(model.body[0].weight) == pytest.approx(gain * math.sqrt(2 / (128 + 256)), rel=0.1)
    model = trainwise.create_model("mlp", (64,), 10, hidden=[64], act="relu", init="orthogonal")
    w = model.body[0].weight.detach()
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(64), atol=1e-4, rtol=0)  # gain √2 for relu


def test_default_init_keeps_pytorch_init():
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", (64,), 10, hidden=[256], init="default")
    torch.manual_seed(0)
    ref = nn.Linear(64, 256)
    assert torch.equal(model.body[0].weight, ref.weight)
    assert torch.count_nonzero(model.body[0].bias) > 0
