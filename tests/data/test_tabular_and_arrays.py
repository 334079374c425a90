import numpy as np
import pytest

from trustlab.core.exceptions import DataFormatError, DataNotFoundError
from trustlab.data import dataset_from_npz
from trustlab.data.tabular import read_adult, read_pima

ADULT_ROWS = (
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K\n"
    "50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, >50K\n"
    "38, ?, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, Black, Female, 0, 0, 40, United-States, <=50K.\n"
    "\n"
)


def test_adult_encoding_by_hand(tmp_path):
    path = tmp_path / "adult.data"
    path.write_text(ADULT_ROWS)
    x, y, names, protected = read_adult(path)
    assert y.tolist() == [0, 1, 0]
    assert names[:6] == ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
    assert x[0, :6].tolist() == [39, 77516, 13, 2174, 0, 40]
    assert x[2, names.index("workclass=?")] == 1 and x[2, names.index("workclass=State-gov")] == 0
    assert protected["sex"][1] == ("Female", "Male") and protected["sex"][0].tolist() == [1, 1, 0]
    assert protected["race"][0].tolist() == [1, 1, 0]  # categories ("Black", "White")
    assert not any(n.startswith(("sex", "race", "education=")) for n in names)


def test_adult_rejects_bad_labels(tmp_path):
    path = tmp_path / "adult.data"
    path.write_text(ADULT_ROWS.replace("<=50K\n", "maybe\n", 1))
    with pytest.raises(DataFormatError, match="'>50K' or '<=50K'"):
        read_adult(path)


def test_pima_requires_its_columns(tmp_path):
    path = tmp_path / "diabetes.csv"
    path.write_text("Pregnancies,Glucose\n1,2\n")
    with pytest.raises(DataFormatError, match="lacks columns BloodPressure"):
        read_pima(path)


def test_npz_round_trip_and_pickle_refusal(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((4, 1, 28, 28), np.float32), y=np.array([0, 1, 2, 3]))
    data = dataset_from_npz(good)
    assert len(data) == 4 and data.num_classes == 4
    evil = tmp_path / "evil.npz"
    np.savez(evil, x=np.array([object()], dtype=object), y=np.array([0]))
    with pytest.raises(DataFormatError, match="without pickles"):
        dataset_from_npz(evil)
    with pytest.raises(DataNotFoundError):
        dataset_from_npz(tmp_path / "absent.npz")
