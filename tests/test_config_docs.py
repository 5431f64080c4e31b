"""docs/config.md is generated from the schema (schema.py) and must be current; every key is documented there."""

from __future__ import annotations

import dataclasses

import pytest

from trainwise import config_docs, schema
from trainwise.config import CHOICES, compose
from trainwise.errors import TrainwiseError


def test_config_md_is_generated_and_current() -> None:
    assert config_docs.DOC.read_text() == config_docs.render(), \
        "docs/config.md is out of date: run `python -m trainwise.config_docs`"


def test_every_key_has_a_doc_and_appears_in_the_reference() -> None:
    text = config_docs.render()
    for key, f in schema.leaf_fields():
        assert f.metadata.get("doc"), f"{key} has no doc in schema.py"
        assert f"`{key.split('.', 1)[-1]}`" in text, key  # the key within its section (data.tokenizer.kind: tokenizer.kind)
    top = {f.name for f in dataclasses.fields(schema.Config)}
    assert {name for name, _ in schema.sections()} | {"model"} <= top


def test_choices_are_declared_once_and_enforced() -> None:
    """CHOICES is read from the schema; a value outside a key's choices is refused naming the key."""
    assert CHOICES["optim.name"] == ("sgd", "rmsprop", "adam", "adamw")
    assert CHOICES["paradigm.name"] == schema.PARADIGMS
    for key, values in CHOICES.items():
        with pytest.raises(TrainwiseError, match=key.replace(".", r"\.")):
            compose(preset="digits-mlp", overrides=[f"{key}=not-a-choice"])
        assert values  # no empty choice list


@pytest.mark.parametrize("key", [key for key, _ in schema.field_checks()])
def test_every_range_check_refuses_a_value_outside_it(key: str) -> None:
    """Each declared range check runs in validate: a value far outside it is refused, naming the key."""
    bad = {"seed": -1, "data.channels": 2, "data.label_fraction": 0}.get(key, -1000)
    with pytest.raises(TrainwiseError, match=key.replace(".", r"\.")):
        compose(preset="digits-mlp", overrides=[f"{key}={bad}"])


def test_check_mode_reports_a_stale_file(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "config.md"
    out.write_text("stale\n")
    assert config_docs.main(["--check", "--out", str(out)]) == 1
    assert config_docs.main(["--out", str(out)]) == 0
    assert config_docs.main(["--check", "--out", str(out)]) == 0
