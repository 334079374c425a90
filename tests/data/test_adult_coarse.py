"""adult_coarse: Adult preprocessed as AIF360's load_preproc_data_adult, checked by hand on a few
rows and against an independent pandas rendering of AIF360's recipe on the reference data."""

import numpy as np
import pandas as pd
import pytest
import torch

from trustlab.core.exceptions import DataFormatError, DataNotFoundError
from trustlab.data import list_datasets, load_dataset, split_status
from trustlab.data.tabular import ADULT_COARSE_FEATURES, ADULT_COLUMNS, read_adult_coarse

ROWS = (
    # age, workclass, fnlwgt, education, education-num, marital, occupation, relationship, race, sex, ...
    "17, Private, 1, 11th, 5, Never-married, Sales, Own-child, Asian-Pac-Islander, Female, 0, 0, 20, ?, <=50K\n"
    "69, Private, 1, HS-grad, 6, Widowed, Sales, Unmarried, White, Female, 0, 0, 20, United-States, <=50K\n"
    "70, ?, 1, Some-college, 12, Married-civ-spouse, ?, Husband, Black, Male, 0, 0, 40, Cuba, >50K\n"
    "90, Private, 1, Bachelors, 13, Married-civ-spouse, Sales, Husband, White, Male, 0, 0, 40, ?, >50K.\n"
    "\n"
)


def _row(x, names, i):
    return {n for n, v in zip(names, x[i]) if v == 1}


def test_coarse_features_by_hand(tmp_path):
    path = tmp_path / "adult.data"
    path.write_text(ROWS)
    x, y, names, protected = read_adult_coarse(path)
    assert x.shape == (4, 18) and x.dtype == np.float32 and names == ADULT_COARSE_FEATURES
    assert y.tolist() == [0, 0, 1, 1]
    assert _row(x, names, 0) == {"Age (decade)=10", "Education Years=<6"}  # neither White nor Male
    assert _row(x, names, 1) == {"race", "Age (decade)=60", "Education Years=6"}
    assert _row(x, names, 2) == {"sex", "Age (decade)=>=70", "Education Years=12"}
    assert _row(x, names, 3) == {"race", "sex", "Age (decade)=>=70", "Education Years=>12"}
    assert protected["sex"][1] == ("Female", "Male") and protected["sex"][0].tolist() == [0, 0, 1, 1]
    assert protected["race"][1] == ("Non-White", "White") and protected["race"][0].tolist() == [0, 1, 0, 1]


def test_coarse_rejects_an_unknown_sex_and_bad_labels(tmp_path):
    path = tmp_path / "adult.data"
    path.write_text(ROWS.replace("Female", "F", 1))
    with pytest.raises(DataFormatError, match="sex must be 'Female' or 'Male', found 'F'"):
        read_adult_coarse(path)
    path.write_text(ROWS.replace("<=50K\n", "maybe\n", 1))
    with pytest.raises(DataFormatError, match="'>50K' or '<=50K'"):
        read_adult_coarse(path)


def test_coarse_is_registered_and_reads_the_adult_folder(tmp_path):
    spec = {s.name: s for s in list_datasets()}["adult_coarse"]
    assert spec.splits == ("all", "train", "test") and spec.directory == "adult"
    assert "AIF360" in spec.description
    assert split_status("adult_coarse", "train", root=tmp_path) == "missing: adult.data"
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "adult")):
        load_dataset("adult_coarse", root=tmp_path)
    (tmp_path / "adult").mkdir()
    (tmp_path / "adult" / "adult.data").write_text(ROWS)
    assert split_status("adult_coarse", "all", root=tmp_path) == "available"
    data = load_dataset("adult_coarse", root=tmp_path)  # default split: all
    assert len(data) == 4 and data.split == "all" and not data.metadata.files[0].verified


def _aif360_recipe(path):
    """AIF360's load_preproc_data_adult written out independently with pandas (per-row rules and
    get_dummies), for adult.data alone."""
    df = pd.read_csv(path, header=None, names=list(ADULT_COLUMNS), skipinitialspace=True, na_values=["?"])
    decade = (df["age"] // 10 * 10).map(lambda a: ">=70" if a >= 70 else str(a))
    edu = df["education-num"].map(lambda e: "<6" if e <= 5 else (">12" if e >= 13 else str(e)))
    out = pd.DataFrame({"race": (df["race"] == "White") * 1.0, "sex": df["sex"].map({"Female": 0.0, "Male": 1.0})})
    dummies = pd.concat(
        [
            pd.get_dummies(decade, prefix="Age (decade)", prefix_sep="="),
            pd.get_dummies(edu, prefix="Education Years", prefix_sep="="),
        ],
        axis=1,
    )
    frame = pd.concat([out, dummies.astype(float)], axis=1)
    return frame, (df["income"] == ">50K").astype(int).to_numpy()


def test_coarse_matches_the_aif360_recipe_on_the_reference_data(reference_data):
    data = load_dataset("adult_coarse", "all", root=reference_data)
    assert data.x.shape == (32561, 18) and int(data.y.sum()) == 7841
    expected, labels = _aif360_recipe(reference_data / "adult" / "adult.data")
    assert set(expected.columns) == set(data.feature_names)
    np.testing.assert_array_equal(data.x.numpy(), expected[list(data.feature_names)].to_numpy(np.float32))
    np.testing.assert_array_equal(data.y.numpy(), labels)
    # the protected attributes are also the 0/1 feature columns
    for name in ("sex", "race"):
        assert torch.equal(data.protected[name].codes.float(), data.x[:, data.feature_names.index(name)])
    assert int(data.protected["sex"].codes.sum()) == 21790 and int(data.protected["race"].codes.sum()) == 27816
    # the one-hot blocks sum to one per row
    for prefix in ("Age (decade)=", "Education Years="):
        cols = [i for i, n in enumerate(data.feature_names) if n.startswith(prefix)]
        assert torch.all(data.x[:, cols].sum(1) == 1)
    assert all(f.verified for f in data.metadata.files)


def test_coarse_splits_are_adults_splits(reference_data):
    for split in ("train", "test"):
        coarse = load_dataset("adult_coarse", split, root=reference_data)
        adult = load_dataset("adult", split, root=reference_data)
        assert torch.equal(coarse.y, adult.y)
        sex = adult.protected["sex"]
        assert sex.categories == ("Female", "Male") and torch.equal(coarse.protected["sex"].codes, sex.codes)
        white = torch.tensor([c == "White" for c in adult.protected["race"].categories])[adult.protected["race"].codes]
        assert torch.equal(coarse.protected["race"].codes, white.long())
        # same rows: the age decade and education group follow from adult's raw columns
        age = adult.x[:, adult.feature_names.index("age")]
        assert torch.equal(coarse.x[:, coarse.feature_names.index("Age (decade)=>=70")], (age >= 70).float())
