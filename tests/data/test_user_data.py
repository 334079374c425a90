"""Bring-your-own data through ``open_dataset``: .npz arrays, image folders and CSV files."""

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from trustlab.core.exceptions import DataFormatError, DataNotFoundError, InputError, UnknownNameError
from trustlab.data import load_dataset
from trustlab.data.io import open_dataset

# ---------------------------------------------------------------- .npz -------------------------


def test_npz_protected_attributes_class_names_and_bounds(tmp_path):
    path = tmp_path / "people.npz"
    x = np.arange(12, dtype=np.float64).reshape(4, 3) / 12
    np.savez(
        path,
        x=x,
        y=np.array([2, 0, 1, 2], np.int32),
        class_names=np.array(["low", "mid", "high"]),
        protected_sex=np.array([0, 1, 1, 0], np.uint8),
        protected_sex_categories=np.array(["F", "M"]),
        protected_age_band=np.array([2, 0, 1, 1]),
        bounds=np.array([0.0, 1.0]),
        row_ids=np.arange(4),
    )
    data = open_dataset(path)
    assert data.x.dtype == torch.float32 and torch.allclose(data.x, torch.from_numpy(x).float())
    assert data.y.tolist() == [2, 0, 1, 2] and data.y.dtype == torch.int64
    assert data.class_names == ("low", "mid", "high") and data.bounds == (0.0, 1.0)
    assert set(data.protected) == {"sex", "age_band"}
    assert data.protected["sex"].codes.tolist() == [0, 1, 1, 0] and data.protected["sex"].categories == ("F", "M")
    assert data.protected["age_band"].categories == ("0", "1", "2")  # no categories array: the codes' names
    assert "ignored arrays: row_ids" in data.metadata.description
    record = data.metadata.files[0]
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and not record.verified
    part = data.subset([3, 0])
    assert part.protected["sex"].codes.tolist() == [0, 0]


def test_npz_without_bounds_is_unbounded_and_caller_bounds_are_checked(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.array([[0.0, 2.0], [1.0, 0.5]], np.float32), y=np.array([0, 1]))
    assert open_dataset(path).bounds is None  # never guessed
    with pytest.raises(InputError, match=r"must lie in the input bounds \[0, 1\], found values in \[0, 2\]"):
        open_dataset(path, bounds=(0.0, 1.0))
    assert open_dataset(path, bounds=(0, 2)).bounds == (0.0, 2.0)
    declared = tmp_path / "declared.npz"
    np.savez(declared, x=np.zeros((2, 2), np.float32), y=np.array([0, 1]), bounds=np.array([-1.0, 1.0]))
    assert open_dataset(declared).bounds == (-1.0, 1.0)
    with pytest.raises(InputError, match=r"declares bounds \[-1.0, 1.0\] but bounds \[0.0, 1.0\] were asked for"):
        open_dataset(declared, bounds=(0.0, 1.0))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((3, 2)), "y": np.array([0, -1, 1])}, r"labels must lie in 0..1 .* found -1..1"),
        (
            {"x": np.zeros((3, 2)), "y": np.array([0, 3, 1]), "class_names": np.array(["a", "b"])},
            r"labels must lie in 0..1 \(2 classes named in class_names\), found 0..3",
        ),
        ({"x": np.zeros((3, 2)), "y": np.array([0.0, 1.0, 1.0])}, r"'y' must be 3 integer labels"),
        ({"x": np.zeros((3, 2)), "y": np.array([0, 1])}, r"'y' must be 3 integer labels"),
        ({"x": np.zeros(3), "y": np.array([0, 1, 1])}, r"'x' must be a numeric"),
        ({"x": np.array([["a", "b"]]), "y": np.array([0])}, r"'x' must be a numeric"),
        ({"x": np.zeros((2, 2), complex), "y": np.array([0, 1])}, r"'x' must be a numeric \(not complex\)"),
        ({"x": np.zeros((2, 2)), "y": np.array([0, 2**40])}, r"labels go up to 1099511627776, more than 100000"),
        ({"x": np.zeros((2, 2)), "y": np.array([0, 1]), "class_names": np.array(["a", "a"])}, r"distinct strings"),
        ({"x": np.zeros((2, 2)), "y": np.array([0, 1]), "protected_sex": np.array([0.0, 1.0])}, r"2 integer codes"),
        ({"x": np.zeros((2, 2)), "y": np.array([0, 1]), "protected_sex": np.array([0, 1, 1])}, r"2 integer codes"),
        (
            {
                "x": np.zeros((2, 2)),
                "y": np.array([0, 1]),
                "protected_sex": np.array([0, 2]),
                "protected_sex_categories": np.array(["F", "M"]),
            },
            r"codes of 'protected_sex' must lie in 0..1 \(2 categories named in protected_sex_categories\)",
        ),  # fmt: skip
        ({"x": np.zeros((2, 2)), "y": np.array([0, 1]), "bounds": np.array([1.0, 0.0])}, r"'bounds' must be two"),
        ({"x": np.zeros((2, 2))}, r"lacks array\(s\) y"),
    ],
)
def test_npz_mistakes_are_one_line_format_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError, match=message) as info:
        open_dataset(path)
    assert "\n" not in str(info.value)


def test_npz_nan_and_empty(tmp_path):
    x = np.zeros((3, 2), np.float32)
    x[1, 1] = np.inf
    np.savez(tmp_path / "inf.npz", x=x, y=np.array([0, 1, 0]))
    with pytest.raises(InputError, match="inputs of inf.npz contain 1 NaN or infinite values"):
        open_dataset(tmp_path / "inf.npz")
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 1, 28, 28), np.float32), y=np.zeros(0, np.int64))
    with pytest.raises(InputError, match="data set 'empty' has no examples"):
        open_dataset(tmp_path / "empty.npz")
    np.savez(tmp_path / "empty_float_y.npz", x=np.zeros((0, 4)), y=np.array([]))
    with pytest.raises(InputError, match="has no examples"):
        open_dataset(tmp_path / "empty_float_y.npz")


def test_npy_and_garbage_named_npz_are_format_errors(tmp_path):
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())
    with pytest.raises(DataFormatError, match="an .npy array, not an .npz archive"):
        open_dataset(tmp_path / "array.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 certainly not a zip")
    with pytest.raises(DataFormatError, match="is not a readable .npz file without pickles"):
        open_dataset(tmp_path / "junk.npz")


# ---------------------------------------------------------------- image folders ---------------


def _save(path, pixels, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path)


def test_greyscale_folder_matches_the_pixels_in_sorted_order(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for cls, names in {"zebra": ["b.png", "a.png"], "ant": ["c.jpg"], "moose": []}.items():
        (tmp_path / "set" / cls).mkdir(parents=True, exist_ok=True)
        for name in names:
            pixels[(cls, name)] = rng.integers(0, 256, (6, 5), dtype=np.uint8)
            _save(tmp_path / "set" / cls / name, pixels[(cls, name)])
    (tmp_path / "set" / "zebra" / ".DS_Store").write_bytes(b"hidden files are skipped")
    data = open_dataset(tmp_path / "set")
    assert data.class_names == ("ant", "moose", "zebra")  # sorted; an empty class keeps its index
    assert data.y.tolist() == [0, 2, 2] and data.x.shape == (3, 1, 6, 5) and data.bounds == (0.0, 1.0)
    assert data.kind == "image" and data.split == "folder" and data.name == "set"
    expected_png = torch.from_numpy(np.stack([pixels[("zebra", "a.png")], pixels[("zebra", "b.png")]])) / 255
    assert torch.equal(data.x[1:, 0], expected_png.float())  # PNG is lossless: exact, a before b
    assert (data.x[0, 0] - torch.from_numpy(pixels[("ant", "c.jpg")]) / 255).abs().mean() < 0.1  # JPEG: close
    lines = "".join(
        f"{cls}/{name}:{hashlib.sha256((tmp_path / 'set' / cls / name).read_bytes()).hexdigest()}\n"
        for cls, name in [("ant", "c.jpg"), ("zebra", "a.png"), ("zebra", "b.png")]
    )
    assert data.metadata.files[0].sha256 == hashlib.sha256(lines.encode()).hexdigest()
    _save(tmp_path / "set" / "zebra" / "a.png", 255 - pixels[("zebra", "a.png")])
    assert open_dataset(tmp_path / "set").sha256 != data.sha256  # the digest follows the bytes


def test_rgb_when_any_image_has_colour_and_16_bit_greyscale(tmp_path):
    _save(tmp_path / "rgb" / "a" / "grey.png", np.full((4, 4), 255, np.uint8))
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0] = 255
    _save(tmp_path / "rgb" / "b" / "red.png", colour)
    data = open_dataset(tmp_path / "rgb")
    assert data.x.shape == (2, 3, 4, 4)
    assert torch.all(data.x[0] == 1) and data.x[1, 0].eq(1).all() and data.x[1, 1:].eq(0).all()
    deep = np.array([[0, 65535], [32768, 16384]], np.uint16)
    _save(tmp_path / "deep" / "a" / "x.png", deep)
    data = open_dataset(tmp_path / "deep")
    assert data.x.shape == (1, 1, 2, 2)
    assert torch.allclose(data.x[0, 0], torch.from_numpy(deep.astype(np.float32) / 65535))


def test_sizes_must_agree_unless_an_image_size_is_given(tmp_path):
    _save(tmp_path / "s" / "a" / "small.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "s" / "a" / "small2.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "s" / "b" / "big.png", np.full((8, 6), 200, np.uint8))
    with pytest.raises(DataFormatError, match=r"2 different sizes \(4x4: 2, 8x6: 1; e\.g\. b/big\.png\)"):
        open_dataset(tmp_path / "s")
    data = open_dataset(tmp_path / "s", image_size=(4, 3))
    assert data.x.shape == (3, 1, 4, 3) and torch.allclose(data.x[2], torch.tensor(200 / 255))
    assert "3 resized to 4x3" in data.metadata.description
    data = open_dataset(tmp_path / "s", image_size=(4, 4))
    assert "1 resized to 4x4" in data.metadata.description
    with pytest.raises(InputError, match="image_size must be two positive integers"):
        open_dataset(tmp_path / "s", image_size=(0, 4))


@pytest.mark.parametrize(
    ("layout", "error", "message"),
    [
        ({}, DataFormatError, "is empty; expected one sub-folder of PNG/JPEG images per class"),
        ({"a.png": "image"}, DataFormatError, "has no class sub-folders: put its 1 file"),
        ({"cat/": None, "dog/": None}, InputError, "data set 'root' has no examples"),
        ({"cat/a.png": "image", "b.png": "image"}, DataFormatError, r"holds 1 file\(s\) beside its class sub-folders"),
        ({"cat/a.png": "image", "cat/notes.txt": "text"}, DataFormatError, r"1 file\(s\) in .* are not PNG or JPEG"),
        ({"cat/a.png": "garbage"}, DataFormatError, "cannot read image .*a.png"),
    ],
)
def test_folder_mistakes(tmp_path, layout, error, message):
    root = tmp_path / "root"
    root.mkdir()
    for name, kind in layout.items():
        target = root / name
        if name.endswith("/"):
            target.mkdir(parents=True)
        elif kind == "image":
            _save(target, np.zeros((3, 3), np.uint8))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"not an image at all")
    with pytest.raises(error, match=message) as info:
        open_dataset(root)
    assert "\n" not in str(info.value)


def test_truncated_png_is_a_format_error(tmp_path):
    _save(tmp_path / "t" / "a" / "x.png", np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
    raw = (tmp_path / "t" / "a" / "x.png").read_bytes()
    (tmp_path / "t" / "a" / "x.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match="cannot read image"):
        open_dataset(tmp_path / "t")


def test_folder_refuses_other_bounds(tmp_path):
    _save(tmp_path / "f" / "a" / "x.png", np.zeros((3, 3), np.uint8))
    assert open_dataset(tmp_path / "f", bounds=(0.0, 1.0)).bounds == (0.0, 1.0)
    with pytest.raises(InputError, match=r"scaled to \[0, 1\], so bounds must be \(0, 1\)"):
        open_dataset(tmp_path / "f", bounds=(0.0, 255.0))


# ---------------------------------------------------------------- CSV -------------------------


def _csv(tmp_path, text, name="table.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_features_labels_and_protected(tmp_path):
    path = _csv(
        tmp_path,
        "age,sex,smoker,income,outcome\n30,F,true,1.5,10\n41,M,False,2e3,2\n52, F ,TRUE,-3,10\n29,M,false,0,9\n",
    )
    data = open_dataset(path, label_column="outcome", protected=["sex"])
    assert data.feature_names == ("age", "smoker", "income") and data.kind == "tabular" and data.bounds is None
    assert data.x.dtype == torch.float32
    assert data.x.tolist() == [[30, 1, 1.5], [41, 0, 2000], [52, 1, -3], [29, 0, 0]]
    assert data.class_names == ("2", "9", "10")  # numeric labels sort as numbers, not as text
    assert data.y.tolist() == [2, 0, 2, 1]
    assert data.protected["sex"].categories == ("F", "M") and data.protected["sex"].codes.tolist() == [0, 1, 0, 1]
    assert data.metadata.files[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    text_labels = _csv(tmp_path, "x,y\n1,dog\n2,cat\n3,dog\n", "text.csv")
    data = open_dataset(text_labels, label_column="y")
    assert data.class_names == ("cat", "dog") and data.y.tolist() == [1, 0, 1]


def test_csv_class_names_fix_the_classes(tmp_path):
    path = _csv(tmp_path, "x,y\n1,c\n2,a\n")
    data = open_dataset(path, label_column="y", class_names=["a", "b", "c"])
    assert data.class_names == ("a", "b", "c") and data.y.tolist() == [2, 0]  # "b" absent: no shift
    with pytest.raises(DataFormatError, match=r"label\(s\) 'c' in column 'y' are not among the classes 'a', 'b'"):
        open_dataset(path, label_column="y", class_names=["a", "b"])


def test_csv_bounds_are_only_what_the_caller_says(tmp_path):
    path = _csv(tmp_path, "x,y\n0.5,0\n3,1\n")
    assert open_dataset(path, label_column="y").bounds is None
    with pytest.raises(InputError, match=r"features of table.csv must lie in the input bounds \[0, 1\]"):
        open_dataset(path, label_column="y", bounds=(0, 1))


@pytest.mark.parametrize(
    ("text", "kwargs", "error", "message"),
    [
        ("a,b\n1,2\n", {}, InputError, "needs its label column named .* has columns 'a', 'b'"),
        ("a,b\n1,2\n", {"label_column": "c"}, DataFormatError, "has no label column 'c'; its columns: 'a', 'b'"),
        ("a,b\n1,2\n", {"label_column": "b", "protected": ["z"]}, DataFormatError, "no protected column 'z'"),
        ("a,b\n1,2\n", {"label_column": "b", "protected": ["b"]}, InputError, "both the label and a protected"),
        ("a,b\n1,2\n", {"label_column": "b", "protected": ["a"]}, DataFormatError, "no feature columns besides"),
        ("a,b\n", {"label_column": "b"}, InputError, "data set 'table' has no examples"),
        ("a,w,b\n1,x,0\n2,y,1\n", {"label_column": "b"}, DataFormatError, r"'w' are not numeric \(e\.g\. 'x' in data"),
        ("a,b\n1,0\n,1\n", {"label_column": "b"}, DataFormatError, r"column 'a' has 1 empty, NaN or infinite cell"),
        ("a,b\n1,0\nnan,1\n", {"label_column": "b"}, DataFormatError, r"first in data row 2"),
        ("a,b\n1,0\ninf,1\n", {"label_column": "b"}, DataFormatError, r"NaN or infinite"),
        ("a,b\n1e39,0\n", {"label_column": "b"}, DataFormatError, r"NaN or infinite"),  # overflows float32
        ("a,b\n1,0\n2,\n", {"label_column": "b"}, DataFormatError, r"column 'b' has 1 empty"),
        ("a,b\n1,0\n2,1,7\n", {"label_column": "b"}, DataFormatError, "not a readable CSV file"),
        ("", {"label_column": "b"}, DataFormatError, "not a readable CSV file"),
        ("a,b\n1,0\n", {"label_column": "b", "class_names": ["x", "x"]}, InputError, "distinct names"),
    ],
)
def test_csv_mistakes(tmp_path, text, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        open_dataset(_csv(tmp_path, text), **kwargs)
    assert "\n" not in str(info.value)


def test_csv_of_the_reference_pima_file(reference_data):
    """The registered Pima set and the same file read as a plain CSV agree."""
    registered = load_dataset("pima", root=reference_data)
    plain = open_dataset(reference_data / "pima" / "diabetes.csv", label_column="Outcome")
    assert plain.feature_names == registered.feature_names and plain.class_names == ("0", "1")
    assert torch.equal(plain.x, registered.x) and torch.equal(plain.y, registered.y)


# ---------------------------------------------------------------- dispatch --------------------


def test_dispatch_and_options_that_do_not_apply(tmp_path):
    assert len(open_dataset("mnist", "sample")) == 1000
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataFormatError, match=r"unknown data format '\.txt'; expected a registered data set name"):
        open_dataset(tmp_path / "notes.txt")
    with pytest.raises(DataNotFoundError, match="data file .*absent.csv does not exist"):
        open_dataset(tmp_path / "absent.csv")
    with pytest.raises(DataNotFoundError, match="data file or folder .*nowhere does not exist"):
        open_dataset(str(tmp_path / "nowhere"))
    with pytest.raises(UnknownNameError, match="unknown dataset 'mnits': not a registered data set"):
        open_dataset("mnits")
    with pytest.raises(InputError, match=r"label_column \(--label-column\) applies to .csv files only"):
        open_dataset("mnist", "sample", label_column="y")
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([0, 1]))
    with pytest.raises(InputError, match=r"image_size \(--image-size\) applies to image folders only"):
        open_dataset(tmp_path / "d.npz", image_size=(2, 2))
    with pytest.raises(InputError, match="protected attribute 'sex' is not in data set 'd'; it has: none"):
        open_dataset(tmp_path / "d.npz", protected=["sex"])
    (tmp_path / "pics" / "a").mkdir(parents=True)
    with pytest.raises(InputError, match=r"protected \(--protected\) applies to .csv files \(columns\) and data sets"):
        open_dataset(tmp_path / "pics", protected=["sex"])
    assert open_dataset(tmp_path / "d.npz", class_names=["no", "yes"]).class_names == ("no", "yes")


def test_protected_picks_the_attributes_a_data_set_carries(tmp_path):
    """``--protected`` on an .npz file (or a registered set) keeps only the attributes named."""
    x, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    np.savez(tmp_path / "p.npz", x=x, y=y, protected_sex=np.array([0, 1, 1, 0]), protected_race=np.array([0, 0, 1, 1]))
    assert set(open_dataset(tmp_path / "p.npz").protected) == {"sex", "race"}
    assert set(open_dataset(tmp_path / "p.npz", protected=["race"]).protected) == {"race"}
    with pytest.raises(InputError, match="protected attribute 'age' is not in data set 'p'; it has: race, sex"):
        open_dataset(tmp_path / "p.npz", protected=["age", "sex"])
