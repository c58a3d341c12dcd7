"""BatchedLSTM: each member computes what its own StackedLSTM computes, forward and backward."""

import pytest
import torch

from stacktune.models import LSTMConfig, StackedLSTM
from stacktune.models.batched import BatchedLSTM

TOL = 1e-5
CONFIGS = [
    LSTMConfig(3, [8], 2),
    LSTMConfig(3, [16, 16, 16], 2, dropout=0.2),
    LSTMConfig(3, [32, 16, 8], 2),
    LSTMConfig(3, [8, 8, 4, 4], 2, residual=True, dropout=0.1),
    LSTMConfig(3, [12, 12], 5, task="classification"),
]
IDS = ["one-layer", "fused", "uneven", "residual", "classification"]
SEEDS = [0, 1, 7]


def members(config: LSTMConfig) -> list[StackedLSTM]:
    out = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        out.append(StackedLSTM(config))
    return out


def padded_batch(batch: int = 6, time: int = 9, channels: int = 3, *, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, time, channels, generator=gen)
    lengths = torch.randint(1, time + 1, (batch,), generator=gen)
    lengths[0] = time  # packing needs one full-length sequence to give the padded length back
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0
    return x, lengths


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("variable", [False, True], ids=["fixed", "variable"])
def test_each_member_computes_its_own_stackedlstm_forward(config, variable):
    models = members(config)
    batched = BatchedLSTM(models).eval()
    x, lengths = padded_batch()
    lengths = lengths if variable else None
    with torch.no_grad():
        out = batched(x, lengths)
        assert out.shape == (len(SEEDS), 6, config.output_size)
        for s, model in enumerate(models):
            torch.testing.assert_close(out[s], model.eval()(x, lengths), rtol=0, atol=TOL)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_a_different_batch_per_member_gives_each_its_own_output(config):
    models = members(config)
    batched = BatchedLSTM(models).eval()
    batches = [padded_batch(seed=s) for s in range(len(SEEDS))]
    x = torch.stack([b[0] for b in batches])
    lengths = torch.stack([b[1] for b in batches])
    with torch.no_grad():
        out = batched(x, lengths)
        for s, model in enumerate(models):
            torch.testing.assert_close(out[s], model.eval()(x[s], lengths[s]), rtol=0, atol=TOL)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("variable", [False, True], ids=["fixed", "variable"])
def test_gradients_match_each_members_own(config, variable):
    models = members(config)
    batched = BatchedLSTM(models).eval()  # eval: no dropout, so both sides do the same arithmetic
    x, lengths = padded_batch()
    lengths = lengths if variable else None
    batched(x, lengths).square().sum().backward()
    for s, model in enumerate(models):
        model.eval()(x, lengths).square().sum().backward()
        mine = batched.member_state_dict(s)  # the weights' names as StackedLSTM has them
        grads = {name: p.grad for name, p in model.named_parameters()}
        stacked = {key: p.grad[s] for key, p in batched._by_key().items()}
        assert set(stacked) == set(grads) == set(mine)
        for name, grad in grads.items():
            torch.testing.assert_close(stacked[name], grad, rtol=1e-4, atol=TOL, msg=f"member {s}, {name}")


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_members_come_back_as_the_stackedlstms_they_were_built_from(config):
    models = members(config)
    back = BatchedLSTM(models).unstack()
    for model, member in zip(models, back, strict=True):
        assert type(member) is StackedLSTM and member.config == config
        for (name, a), (name_b, b) in zip(model.state_dict().items(), member.state_dict().items(), strict=True):
            assert name == name_b
            assert torch.equal(a, b)


def test_taking_a_member_out_leaves_the_random_stream_alone():
    batched = BatchedLSTM(members(CONFIGS[0]))
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    batched.member(1)
    assert torch.equal(torch.rand(4), expected)


def test_dropout_masks_differ_between_members_in_training():
    config = LSTMConfig(3, [16, 16], 1, dropout=0.5)
    torch.manual_seed(0)
    same = StackedLSTM(config)
    batched = BatchedLSTM([same, same]).train()
    out = batched(torch.randn(4, 5, 3))
    assert not torch.equal(out[0], out[1])
    batched.eval()
    with torch.no_grad():
        out = batched(torch.randn(4, 5, 3))
    assert torch.equal(out[0], out[1])


def test_keep_shrinks_the_stack_to_the_chosen_members_in_order():
    models = members(CONFIGS[2])
    batched = BatchedLSTM(models)
    batched.keep([2, 0])
    assert batched.members == 2
    x, _ = padded_batch()
    with torch.no_grad():
        out = batched.eval()(x)
        torch.testing.assert_close(out[0], models[2].eval()(x), rtol=0, atol=TOL)
        torch.testing.assert_close(out[1], models[0].eval()(x), rtol=0, atol=TOL)


def test_models_of_different_configs_are_refused_by_index():
    with pytest.raises(ValueError, match=r"models\[1\]"):
        BatchedLSTM([StackedLSTM(LSTMConfig(3, [8], 1)), StackedLSTM(LSTMConfig(3, [4], 1))])
    with pytest.raises(ValueError, match="none"):
        BatchedLSTM([])
