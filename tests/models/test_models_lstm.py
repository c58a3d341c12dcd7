"""StackedLSTM: config validation, shapes, parameter counts, initialisation, skips, padding."""

import pytest
import torch

from stacktune.models import LSTMConfig, StackedLSTM, count_parameters, load_model, save_model

CONFIGS = [
    LSTMConfig(3, [16], 2),
    LSTMConfig(3, [16, 16, 16], 2, dropout=0.2),
    LSTMConfig(3, [32, 16, 8], 2),
    LSTMConfig(3, [8, 8, 4, 4], 2, residual=True, dropout=0.1),
]
IDS = ["one-layer", "fused", "uneven", "residual"]


def lstm_layer_params(inputs: int, hidden: int) -> int:
    return 4 * hidden * (inputs + hidden) + 8 * hidden


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"units": []}, "[]"),
        ({"units": [32, 0]}, "0"),
        ({"units": [16, -4]}, "-4"),
        ({"units": [True]}, "True"),
        ({"units": 32}, "32"),
        ({"input_size": 0}, "0"),
        ({"output_size": -1}, "-1"),
        ({"task": "ranking"}, "'ranking'"),
        ({"dropout": 1.0}, "1.0"),
        ({"dropout": -0.1}, "-0.1"),
        ({"forget_bias": float("nan")}, "nan"),
    ],
)
def test_config_rejects_bad_values_and_names_them(kwargs, bad):
    args = {"input_size": 3, "units": [8], "output_size": 1, **kwargs}
    with pytest.raises(ValueError, match=bad.replace("[", r"\[").replace("]", r"\]")):
        LSTMConfig(**args)


def test_config_keeps_units_as_a_list():
    assert LSTMConfig(3, (8, 4), 1).units == [8, 4]


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("task, outputs", [("regression", 2), ("classification", 5)])
def test_output_shape(config, task, outputs):
    config = LSTMConfig(3, config.units, outputs, task=task, residual=config.residual)
    out = StackedLSTM(config)(torch.randn(7, 11, 3))
    assert out.shape == (7, outputs)
    assert out.dtype == torch.float32


def test_parameter_count_matches_hand_formula_for_uneven_widths():
    config = LSTMConfig(3, [32, 16, 8], 2)
    layers = lstm_layer_params(3, 32) + lstm_layer_params(32, 16) + lstm_layer_params(16, 8)
    by_hand = layers + 8 * 2 + 2
    assert by_hand == 8786
    model = StackedLSTM(config)
    assert count_parameters(config) == model.num_parameters() == by_hand
    assert sum(p.numel() for p in model.parameters()) == by_hand


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_count_parameters_is_exact(config):
    assert count_parameters(config) == sum(p.numel() for p in StackedLSTM(config).parameters())


def test_equal_widths_use_one_fused_lstm_and_uneven_widths_a_layer_list():
    fused = StackedLSTM(LSTMConfig(3, [16, 16, 16], 1))
    assert isinstance(fused.lstm, torch.nn.LSTM) and fused.lstm.num_layers == 3
    stacked = StackedLSTM(LSTMConfig(3, [32, 16, 8], 1))
    assert [layer.hidden_size for layer in stacked.layers] == [32, 16, 8]


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("forget_bias", [1.0, 0.0, 2.5])
def test_forget_gate_bias_sums_to_forget_bias(config, forget_bias):
    config = LSTMConfig(3, config.units, 2, residual=config.residual, forget_bias=forget_bias)
    params = dict(StackedLSTM(config).named_parameters())
    forget_sums = []
    for name, b_ih in params.items():
        if "bias_ih" in name:
            b_hh = params[name.replace("bias_ih", "bias_hh")]
            h = b_ih.shape[0] // 4  # gate order: input, forget, cell, output
            forget_sums.append(b_ih[h : 2 * h] + b_hh[h : 2 * h])
    assert len(forget_sums) == len(config.units)
    for s in forget_sums:
        assert torch.equal(s, torch.full_like(s, forget_bias))


def test_skips_only_between_layers_of_equal_width():
    assert LSTMConfig(8, [8, 8, 4, 4, 4, 2], 1, residual=True).skips == (
        False,
        True,
        False,
        True,
        True,
        False,
    )
    assert LSTMConfig(8, [8, 8, 4], 1).skips == (False, False, False)


def test_residual_layer_adds_its_input():
    model = StackedLSTM(LSTMConfig(3, [8, 8], 1, residual=True)).eval()
    # an all-zero LSTM outputs exactly zero, so the stack's output is the first layer's
    with torch.no_grad():
        for p in model.layers[1].parameters():
            p.zero_()
    x = torch.randn(4, 6, 3)
    first, _ = model.layers[0](x)
    torch.testing.assert_close(model(x), model.head(first[:, -1]), rtol=0, atol=0)


def test_residual_flag_is_a_no_op_when_no_widths_match():
    with_flag = StackedLSTM(LSTMConfig(3, [8, 4, 2], 1, residual=True)).eval()
    without = StackedLSTM(LSTMConfig(3, [8, 4, 2], 1)).eval()
    without.load_state_dict(with_flag.state_dict())
    x = torch.randn(4, 6, 3)
    assert torch.equal(with_flag(x), without(x))


def padded_batch(lengths: list[int], steps: int, channels: int = 3, fill: float = 0.0):
    """Random sequences right-padded with fill, and each one unpadded."""
    sequences = [torch.randn(n, channels) for n in lengths]
    x = torch.full((len(lengths), steps, channels), fill)
    for i, s in enumerate(sequences):
        x[i, : len(s)] = s
    return x, torch.tensor(lengths), sequences


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_padding_is_ignored(config):
    model = StackedLSTM(config).eval()
    lengths = [5, 9, 2, 9, 7]
    x, lens, sequences = padded_batch(lengths, steps=12)
    out = model(x, lens)
    for i, s in enumerate(sequences):
        torch.testing.assert_close(out[i], model(s.unsqueeze(0))[0], rtol=1e-5, atol=1e-6)
    # other padding values: the packed run never reads them
    garbage = x.clone()
    for i, n in enumerate(lengths):
        garbage[i, n:] = torch.randn(12 - n, 3) * 1e3
    assert torch.equal(model(garbage, lens), out)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_full_lengths_match_the_unpacked_path(config):
    model = StackedLSTM(config).eval()
    x = torch.randn(4, 6, 3)
    torch.testing.assert_close(model(x, torch.full((4,), 6)), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_save_load_round_trip(config, tmp_path):
    model = StackedLSTM(config).eval()
    path = tmp_path / "model.pt"
    save_model(model, path)
    loaded = load_model(path)
    assert loaded.config == config and not loaded.training
    x = torch.randn(4, 6, 3)
    assert torch.equal(loaded(x), model(x))
