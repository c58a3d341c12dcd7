"""Bad CSV files give one-line DataErrors that name the file, the column and the line."""

import pytest

from stacktune.datasets import DataError, load

GOOD = "time,value,other\n" + "".join(f"{t},{t * 0.5},{t % 7}\n" for t in range(1, 41))


def load_text(tmp_path, text, **spec):
    path = tmp_path / "series.csv"
    path.write_text(text)
    return load({"csv": "series.csv", "target": "value", "window": 3, **spec}, base_dir=tmp_path)


def expect(tmp_path, text, *fragments, **spec):
    with pytest.raises(DataError) as error:
        load_text(tmp_path, text, **spec)
    message = str(error.value)
    assert "\n" not in message and "series.csv" in message
    for fragment in fragments:
        assert fragment in message, message


def bad_cell(value, line=5):
    rows = GOOD.splitlines()
    time, _, other = rows[line - 1].split(",")
    rows[line - 1] = f"{time},{value},{other}"
    return "\n".join(rows) + "\n"


def test_good_file_loads_relative_to_base_dir(tmp_path):
    prepared = load_text(tmp_path, GOOD)
    assert prepared.name == "series" and prepared.meta["columns"] == ["time", "value", "other"]


def test_missing_column_lists_available_columns(tmp_path):
    expect(tmp_path, GOOD, "target column 'price' not found", "available columns: time, value, other", target="price")
    expect(tmp_path, GOOD, "feature column 'nope' not found", features=["time", "nope"])


def test_non_numeric_value_names_line_and_value(tmp_path):
    expect(tmp_path, bad_cell("abc"), "column 'value'", "non-numeric value 'abc'", "line 5")


@pytest.mark.parametrize("cell", ["", "NaN", "nan"])
def test_missing_value_names_line_and_column(tmp_path, cell):
    expect(tmp_path, bad_cell(cell, line=9), "column 'value'", "missing value (NaN", "line 9")


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity"])
def test_infinity_names_line_and_column(tmp_path, cell):
    expect(tmp_path, bad_cell(cell, line=3), "column 'value'", "infinite value", "line 3")


def test_bad_value_in_a_default_feature_is_reported(tmp_path):
    rows = GOOD.splitlines()
    rows[10] = rows[10].rsplit(",", 1)[0] + ",oops"
    expect(tmp_path, "\n".join(rows) + "\n", "column 'other'", "'oops'", "line 11")


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    text = bad_cell("abc", line=6).replace("\n", "\n\n", 1)  # blank line 2; the bad cell moves to line 7
    expect(tmp_path, text, "line 7")


def test_series_too_short(tmp_path):
    text = "value\n" + "".join(f"{t}\n" for t in range(12))
    expect(tmp_path, text, "series has 12 rows", "window 3 + horizon 2 need 5 rows", "at least 31 rows", horizon=2)


def test_empty_file_and_header_only(tmp_path):
    expect(tmp_path, "", "file is empty")
    expect(tmp_path, "time,value\n", "no data rows")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"absent\.csv: file not found"):
        load({"csv": str(tmp_path / "absent.csv"), "target": "value", "window": 3})


def test_missing_window(tmp_path):
    expect(tmp_path, GOOD, "forecasting needs `window`", window=None)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "series.csv"
    with open(path, "wb") as handle:
        handle.truncate(3 << 30)  # sparse: takes no disk space
    with pytest.raises(DataError) as error:
        load({"csv": "series.csv", "target": "value", "window": 3}, base_dir=tmp_path)
    assert str(error.value) == f"{path}: file is 3221225472 bytes (3 GiB), over the 2 GiB limit for a CSV file"


def test_a_huge_cell_or_column_name_is_cut_in_the_message(tmp_path):
    expect(tmp_path, bad_cell("x" * 100_000), "non-numeric value 'xxxx", "...", "at line 5")
    long_name = "time,value," + "o" * 100_000 + "\n" + "1,2,3\n" * 40
    with pytest.raises(DataError) as error:
        load_text(tmp_path, long_name, target="missing")
    assert len(str(error.value)) < 300 and "available columns: time, value, ooo" in str(error.value)
