"""Static metadata of the built-in datasets.

Kept free of heavy imports so that listing datasets and validating specs is instant;
tests check that these numbers match what the loaders return.
"""

from __future__ import annotations

from .errors import DataError, shown
from .types import DatasetInfo

_SYNTHETIC = "synthetic"

_INFOS = (
    DatasetInfo(
        "sine", "regression", 1000, 1, None, _SYNTHETIC, "Sum of three seeded sines plus noise; univariate forecasting."
    ),
    DatasetInfo(
        "linear",
        "regression",
        100,
        1,
        None,
        _SYNTHETIC,
        "The series 1..N predicted from its last values (try window 2).",
    ),
    DatasetInfo(
        "fibonacci",
        "regression",
        1000,
        2,
        None,
        _SYNTHETIC,
        "K_t = (K_{t-1} + K_{t-2}) mod 1 and X_t = cos(2 pi K_t) + noise; inputs [K, X], target X.",
    ),
    DatasetInfo(
        "mackey_glass",
        "regression",
        1500,
        1,
        None,
        _SYNTHETIC,
        "Chaotic Mackey-Glass delay equation (tau 17), sampled once per time unit.",
    ),
    DatasetInfo(
        "adding",
        "regression",
        2000,
        2,
        None,
        _SYNTHETIC,
        "Adding problem: sum the two marked values of a (seq_len, 2) sequence; length = samples.",
    ),
    DatasetInfo(
        "sunspots",
        "regression",
        309,
        1,
        None,
        "bundled: statsmodels sunspots",
        "Yearly sunspot activity 1700-2008 (SUNACTIVITY).",
    ),
    DatasetInfo(
        "co2",
        "regression",
        2284,
        1,
        None,
        "bundled: statsmodels co2",
        "Weekly Mauna Loa CO2 1958-2001, gaps filled by interpolation.",
    ),
    DatasetInfo(
        "macrodata",
        "regression",
        203,
        7,
        None,
        "bundled: statsmodels macrodata",
        "US quarterly macro data 1959-2009; target realgdp, seven series as inputs.",
    ),
    DatasetInfo(
        "japanese_vowels",
        "classification",
        640,
        12,
        9,
        "bundled: UEA JapaneseVowels",
        "Speaker recognition from LPC cepstra; variable length 7-29 steps.",
    ),
    DatasetInfo(
        "italy_power_demand",
        "classification",
        1096,
        1,
        2,
        "bundled: UCR ItalyPowerDemand",
        "Daily electricity demand curves (24 steps); winter or summer.",
    ),
    DatasetInfo(
        "basic_motions",
        "classification",
        80,
        6,
        4,
        "bundled: UEA BasicMotions",
        "Smartwatch accelerometer and gyroscope, 100 steps; four activities.",
    ),
)

INFOS: dict[str, DatasetInfo] = {info.name: info for info in _INFOS}

# Windowed series (need `window`); every other set is made of independent sequences.
FORECASTING = frozenset({"sine", "linear", "fibonacci", "mackey_glass", "sunspots", "co2", "macrodata"})
# Sets generated in code, whose size `length` sets.
GENERATED = frozenset(name for name, info in INFOS.items() if info.source == _SYNTHETIC)


def unknown_name_message(name: str) -> str:
    """Return the one-line message for a dataset name that is not built in."""
    return f"unknown dataset {shown(name)}; known datasets: {', '.join(INFOS)}"


def get_info(name: str) -> DatasetInfo:
    """Return the registry entry for a built-in dataset name, or raise DataError listing the known names."""
    try:
        return INFOS[name]
    except KeyError:
        raise DataError(unknown_name_message(name)) from None
