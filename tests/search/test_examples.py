"""Every committed example is a valid search spec or training config, and its dataset loads."""

from __future__ import annotations

import pytest
from conftest import EXAMPLES

from stacktune.datasets import load
from stacktune.search.spec.loading import load_spec, load_yaml, read_yaml
from stacktune.search.spec.schema import TrainConfig


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_is_valid_and_its_data_loads(path):
    if "depths" in read_yaml(path):
        spec = load_spec(path)
        assert spec.trials_per_depth >= 1
        dataset = spec.dataset
    else:
        dataset = load_yaml(TrainConfig, path).dataset
    data = load(dataset, base_dir=path.parent)
    assert len(data.train) > 0 and len(data.val) > 0 and len(data.test) > 0


def test_the_question_people_ask_is_among_the_examples():
    spec = load_spec(EXAMPLES / "sunspots-depths.yaml")
    assert spec.depths == [2, 3, 6] and spec.dataset.horizon == 1
