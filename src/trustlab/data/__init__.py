"""Data sets in pixel space with their provenance: ``load_dataset(name, split, root=...)`` for the
registered ones, ``open_dataset(name_or_path, ...)`` for those and a user's .npz, .csv or image folder."""

from trustlab.data.arrays import dataset_from_npz
from trustlab.data.csv import dataset_from_csv
from trustlab.data.dataset import Dataset, DatasetMetadata, FileRecord, ProtectedAttribute
from trustlab.data.folders import dataset_from_folder
from trustlab.data.idx import read_idx, write_idx
from trustlab.data.io import open_dataset
from trustlab.data.paths import resolve_data_dir
from trustlab.data.registry import get_spec, list_datasets, load_dataset, split_status

__all__ = [
    "Dataset",
    "DatasetMetadata",
    "FileRecord",
    "ProtectedAttribute",
    "dataset_from_csv",
    "dataset_from_folder",
    "dataset_from_npz",
    "get_spec",
    "list_datasets",
    "load_dataset",
    "open_dataset",
    "read_idx",
    "resolve_data_dir",
    "split_status",
    "write_idx",
]
