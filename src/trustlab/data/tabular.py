"""Readers for the tabular data sets (Pima diabetes, UCI Adult, and Adult coarsened as AIF360 does)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trustlab.core.exceptions import DataFormatError

PIMA_FEATURES = (
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
)
PIMA_TARGET = "Outcome"

ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
ADULT_CATEGORICAL = ("workclass", "marital-status", "occupation", "relationship", "native-country")
ADULT_PROTECTED = ("sex", "race")
# "education" is dropped: it is the same information as the ordinal "education-num".


def read_pima(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features (float32, N x 8), outcome (int64) and feature names from ``diabetes.csv``."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"{path} is not a readable CSV file ({exc})") from None
    wanted = (*PIMA_FEATURES, PIMA_TARGET)
    absent = [c for c in wanted if c not in frame.columns]
    if absent:
        raise DataFormatError(f"{path} lacks columns {', '.join(absent)}")
    values = frame[list(wanted)]
    if values.isna().any().any():
        raise DataFormatError(f"{path} has empty cells")
    outcome = values[PIMA_TARGET].to_numpy()
    if not np.isin(outcome, (0, 1)).all():
        raise DataFormatError(f"{path}: column {PIMA_TARGET} must be 0 or 1")
    x = values[list(PIMA_FEATURES)].to_numpy(dtype=np.float32)
    return x, outcome.astype(np.int64), PIMA_FEATURES


def _adult_frame(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The rows of an Adult file as text columns, and the income column without the trailing dot
    that ``adult.test`` writes (``>50K.``); a one-line :class:`DataFormatError` for a malformed file."""
    try:
        frame = pd.read_csv(
            path,
            header=None,
            names=list(ADULT_COLUMNS),
            sep=",",
            skipinitialspace=True,
            comment="|",
            dtype=str,
            keep_default_na=False,
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"{path} is not a readable Adult file ({exc})") from None
    frame = frame[frame["age"].str.strip() != ""]  # blank trailing lines
    if frame["income"].eq("").any():
        raise DataFormatError(f"{path}: some rows have fewer than {len(ADULT_COLUMNS)} columns")
    income = frame["income"].str.rstrip(".")
    if not income.isin([">50K", "<=50K"]).all():
        raise DataFormatError(f"{path}: last column must be '>50K' or '<=50K'")
    return frame, income


def read_adult(
    path: Path,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict[str, tuple[np.ndarray, tuple[str, ...]]]]:
    """Features, income label (1 for >50K), feature names, and protected attributes.

    Numeric columns stay on their own scale; categorical ones are one-hot encoded (``?`` is a
    category of its own). ``sex`` and ``race`` are returned separately as codes and are not
    part of the features. Note that ``relationship`` (Husband/Wife) remains a proxy for sex.
    """
    frame, income = _adult_frame(path)
    try:
        numeric = frame[list(ADULT_NUMERIC)].astype(np.float32).to_numpy()
    except ValueError as exc:
        raise DataFormatError(f"{path}: a numeric column holds text ({exc})") from None
    blocks, names = [numeric], list(ADULT_NUMERIC)
    for column in ADULT_CATEGORICAL:
        categories = sorted(frame[column].unique())
        codes = pd.Categorical(frame[column], categories=categories).codes
        blocks.append(np.eye(len(categories), dtype=np.float32)[codes])
        names.extend(f"{column}={c}" for c in categories)
    protected = {}
    for column in ADULT_PROTECTED:
        categories = tuple(sorted(frame[column].unique()))
        codes = pd.Categorical(frame[column], categories=categories).codes.astype(np.int64)
        protected[column] = (codes, categories)
    x = np.concatenate(blocks, axis=1)
    y = (income == ">50K").to_numpy().astype(np.int64)
    return x, y, tuple(names), protected


# AIF360's coarse Adult (``load_preproc_data_adult``): the columns in the order of its feature matrix.
ADULT_COARSE_AGES = ("10", "20", "30", "40", "50", "60", ">=70")
ADULT_COARSE_EDUCATION = ("6", "7", "8", "9", "10", "11", "12", "<6", ">12")
ADULT_COARSE_FEATURES = (
    "race",
    "sex",
    *(f"Age (decade)={a}" for a in ADULT_COARSE_AGES),
    *(f"Education Years={e}" for e in ADULT_COARSE_EDUCATION),
)
ADULT_COARSE_PROTECTED = {"sex": ("Female", "Male"), "race": ("Non-White", "White")}


def read_adult_coarse(
    path: Path,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict[str, tuple[np.ndarray, tuple[str, ...]]]]:
    """Adult coarsened as AIF360's ``load_preproc_data_adult`` does: features, income label (1
    for >50K), feature names and protected attributes, like :func:`read_adult`.

    The 18 features, in AIF360's column order (``ADULT_COARSE_FEATURES``): ``race`` (1 = White,
    0 = any other race), ``sex`` (1 = Male, 0 = Female), ``Age (decade)`` (``age // 10 * 10``,
    70 and over as ``>=70``) one-hot, and ``Education Years`` (``education-num``: ``<6`` for 5 or
    less, 6 to 12 kept, ``>12`` for 13 or more) one-hot. As in AIF360, the protected attributes
    are *also* feature columns; they come back as protected attributes too, sex ("Female",
    "Male") and race ("Non-White", "White"), with codes equal to those columns. No row is
    dropped: ``?`` appears only in columns this preprocessing does not use.
    """
    frame, income = _adult_frame(path)
    try:
        age = frame["age"].astype(np.int64).to_numpy()
        education = frame["education-num"].astype(np.int64).to_numpy()
    except ValueError as exc:
        raise DataFormatError(f"{path}: a numeric column holds text ({exc})") from None
    if (age < 10).any():
        raise DataFormatError(f"{path}: age must be at least 10, found {int(age.min())}")
    unknown_sex = sorted(set(frame["sex"]) - set(ADULT_COARSE_PROTECTED["sex"]))
    if unknown_sex:
        raise DataFormatError(f"{path}: sex must be 'Female' or 'Male', found {', '.join(map(repr, unknown_sex))}")
    sex = (frame["sex"] == "Male").to_numpy().astype(np.int64)
    race = (frame["race"] == "White").to_numpy().astype(np.int64)
    age_code = np.minimum(age // 10, 7) - 1  # decade 10 -> 0, ..., 60 -> 5, 70 and over -> 6
    # 6..12 -> 0..6, <6 -> 7, >12 -> 8
    education_code = np.where(education <= 5, 7, np.where(education >= 13, 8, education - 6))
    x = np.concatenate(
        [
            np.stack([race, sex], axis=1).astype(np.float32),
            np.eye(len(ADULT_COARSE_AGES), dtype=np.float32)[age_code],
            np.eye(len(ADULT_COARSE_EDUCATION), dtype=np.float32)[education_code],
        ],
        axis=1,
    )
    y = (income == ">50K").to_numpy().astype(np.int64)
    protected = {"sex": (sex, ADULT_COARSE_PROTECTED["sex"]), "race": (race, ADULT_COARSE_PROTECTED["race"])}
    return x, y, ADULT_COARSE_FEATURES, protected
