"""Readers for the tabular data sets (Pima diabetes, UCI Adult)."""

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


def read_adult(
    path: Path,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict[str, tuple[np.ndarray, tuple[str, ...]]]]:
    """Features, income label (1 for >50K), feature names, and protected attributes.

    Numeric columns stay on their own scale; categorical ones are one-hot encoded (``?`` is a
    category of its own). ``sex`` and ``race`` are returned separately as codes and are not
    part of the features. Note that ``relationship`` (Husband/Wife) remains a proxy for sex.
    """
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
