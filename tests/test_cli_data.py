"""Any data in, through ``trustlab evaluate --dataset PATH``: an image folder works, and every kind
of bad data is one line on stderr with exit code 2."""

import json

import numpy as np
import pytest
from PIL import Image

from cli_helpers import assert_one_line_error, run_cli
from trustlab.data import load_dataset


def evaluate(capsys, tmp_path, dataset, *extra):
    return run_cli(capsys, "evaluate", "--model", "mnist_cnn", "--dataset", dataset, "--out", tmp_path / "run", *extra)


def _digits_npz(path, n=8, **arrays):
    data = load_dataset("mnist", "sample").subset(slice(0, n))
    np.savez(path, **({"x": data.x.numpy(), "y": data.y.numpy()} | arrays))
    return path


def test_an_image_folder_evaluates_like_the_arrays_it_holds(capsys, tmp_path):
    sample = load_dataset("mnist", "sample")
    folder = tmp_path / "digits"
    chosen = []
    for label in range(10):
        (folder / str(label)).mkdir(parents=True)
        for i in np.flatnonzero(sample.y.numpy() == label)[:3]:
            pixels = (sample.x[i, 0].numpy() * 255).round().astype(np.uint8)
            Image.fromarray(pixels).save(folder / str(label) / f"{i:04d}.png")
            chosen.append(int(i))
    code, out, err = evaluate(capsys, tmp_path, folder)
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    accuracy = results["accuracy-digits-folder"]
    assert accuracy["examples"] == 30 and accuracy["class_names"] == [str(i) for i in range(10)]
    np.savez(tmp_path / "same.npz", x=sample.x[chosen].numpy(), y=sample.y[chosen].numpy())
    code, _, err = run_cli(
        capsys, "evaluate", "--model", "mnist_cnn", "--dataset", tmp_path / "same.npz", "--out", tmp_path / "npz"
    )
    assert code == 0, err
    same = json.loads((tmp_path / "npz" / "results.json").read_text())["results"]["accuracy-same-file"]
    assert same["confusion"] == accuracy["confusion"]  # PNG is lossless: the very same predictions
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (
        manifest["data"]["digits/folder"]["examples"] == 30 and len(manifest["data"]["digits/folder"]["sha256"]) == 64
    )


def test_unknown_format(capsys, tmp_path):
    (tmp_path / "data.txt").write_text("1,2,3\n")
    code, _, err = evaluate(capsys, tmp_path, tmp_path / "data.txt")
    assert_one_line_error(code, err, "unknown data format '.txt'", "a folder with one sub-folder of images per class")


def test_wrong_shape_for_the_model(capsys, tmp_path):
    np.savez(tmp_path / "flat.npz", x=np.zeros((4, 784), np.float32), y=np.arange(4))
    code, _, err = evaluate(capsys, tmp_path, tmp_path / "flat.npz")
    assert_one_line_error(code, err, "(4, 784)", "(N, 1, 28, 28)")


def test_labels_out_of_range(capsys, tmp_path):
    path = _digits_npz(tmp_path / "eleven.npz", y=np.array([0, 1, 2, 3, 4, 5, 6, 10]))
    code, _, err = evaluate(capsys, tmp_path, path)
    assert_one_line_error(code, err, "has 11 classes but the model predicts 10")
    path = _digits_npz(tmp_path / "negative.npz", y=np.array([0, 1, 2, 3, 4, 5, 6, -1]))
    code, _, err = evaluate(capsys, tmp_path, path)
    assert_one_line_error(code, err, "labels must lie in 0..6", "found -1..6")
    path = _digits_npz(
        tmp_path / "named.npz", y=np.array([0, 1, 2, 3, 4, 5, 6, 12]), class_names=np.array(list("0123456789"))
    )
    code, _, err = evaluate(capsys, tmp_path, path)
    assert_one_line_error(code, err, "labels must lie in 0..9 (10 classes named in class_names), found 0..12")


def test_empty_npz_is_an_error_not_nan(capsys, tmp_path):
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 1, 28, 28), np.float32), y=np.zeros(0, np.int64))
    code, out, err = evaluate(capsys, tmp_path, tmp_path / "empty.npz")
    assert_one_line_error(code, err, "data set 'empty' has no examples")
    assert "nan" not in out


def test_empty_image_folder(capsys, tmp_path):
    (tmp_path / "images").mkdir()
    code, _, err = evaluate(capsys, tmp_path, tmp_path / "images")
    assert_one_line_error(code, err, "is empty; expected one sub-folder of PNG/JPEG images per class")
    for label in ("0", "1"):
        (tmp_path / "images" / label).mkdir()
    code, _, err = evaluate(capsys, tmp_path, tmp_path / "images")
    assert_one_line_error(code, err, "data set 'images' has no examples")


def test_folder_without_class_sub_folders(capsys, tmp_path):
    (tmp_path / "loose").mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "loose" / f"{i}.png")
    code, _, err = evaluate(capsys, tmp_path, tmp_path / "loose")
    assert_one_line_error(code, err, "has no class sub-folders", "one sub-folder per class")


def test_csv_without_the_label_column(capsys, tmp_path):
    (tmp_path / "table.csv").write_text("a,b,outcome\n1,2,0\n3,4,1\n")
    code, _, err = evaluate(capsys, tmp_path, tmp_path / "table.csv")
    assert_one_line_error(code, err, "needs its label column named", "'a', 'b', 'outcome'")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_in_x(capsys, tmp_path, value):
    x = load_dataset("mnist", "sample").x[:4].numpy().copy()
    x[2, 0, 3, 3] = value
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(4))
    code, _, err = evaluate(capsys, tmp_path, tmp_path / "nan.npz")
    assert_one_line_error(code, err, "inputs of nan.npz contain 1 NaN or infinite values")


def test_corrupt_npz(capsys, tmp_path):
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 this is no zip archive")
    code, _, err = evaluate(capsys, tmp_path, tmp_path / "broken.npz")
    assert_one_line_error(code, err, "is not a readable .npz file without pickles")


@pytest.mark.parametrize(("option", "value"), [("--eps-max", "5"), ("--eps", "5")])
def test_robustness_budget_above_the_input_range(capsys, tmp_path, option, value):
    extra = ["--no-search"] if option == "--eps" else []
    code, _, err = run_cli(
        capsys, "robustness", "--model", "mnist_cnn", "--dataset", "mnist", "--split", "sample", "--limit", "4",
        option, value, *extra, "--out", tmp_path / "run",
    )  # fmt: skip
    assert_one_line_error(code, err, f"{option} 5 is larger than the L-inf input range 1 (bounds [0, 1])")
    assert not (tmp_path / "run").exists()  # refused before anything was loaded into a run directory


def test_robustness_l2_budget_above_the_input_range(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "robustness", "--model", "mnist_cnn", "--dataset", "mnist", "--split", "sample", "--limit", "4",
        "--norm", "l2", "--eps-max", "28.5", "--out", tmp_path / "run",
    )  # fmt: skip
    assert_one_line_error(code, err, "--eps-max 28.5 is larger than the L2 input range 28 = 1 x sqrt(784 input values)")


def test_evaluating_no_examples_is_an_error_wherever_the_data_came_from(tiny_cnn):
    from trustlab.core.exceptions import InputError
    from trustlab.models.evaluation import evaluate as evaluate_model

    empty = load_dataset("mnist", "sample").subset(slice(0, 0))
    with pytest.raises(InputError, match="^data set 'mnist' has no examples$"):
        evaluate_model(tiny_cnn, empty, show_progress=False)
