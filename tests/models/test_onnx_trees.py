"""scikit-learn tree ensembles exported to ONNX (skl2onnx's TreeEnsembleClassifier) read as
classifiers that give probabilities only: they match scikit-learn, refuse gradient methods
clearly, and are audited with the gradient checks skipped."""

import numpy as np
import pytest
import torch

from tabular_helpers import SKIPPED_FOR_TABULAR, synthetic_tabular
from trustlab.core.exceptions import GradientsUnavailableError, ModelLoadError
from trustlab.models import load_model

onnx = pytest.importorskip("onnx")
skl2onnx = pytest.importorskip("skl2onnx")

FEATURES = 6


def _rows(n: int, seed: int) -> np.ndarray:
    return synthetic_tabular(n, FEATURES, decisive=0, seed=seed).x.numpy()


def _labels(x: np.ndarray, classes: int) -> np.ndarray:
    score = x[:, 0] + 0.5 * x[:, 2]
    return (score > 0).astype(np.int64) if classes == 2 else np.digitize(score, [-0.5, 0.5])


def _estimator(kind: str):
    from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    return {
        "tree": lambda: DecisionTreeClassifier(max_depth=5, random_state=0),
        "forest": lambda: RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0),
        "extra-trees": lambda: ExtraTreesClassifier(n_estimators=8, max_depth=5, random_state=0),
        "boosting": lambda: GradientBoostingClassifier(n_estimators=8, max_depth=3, random_state=0),
        "scaled-forest": lambda: make_pipeline(
            StandardScaler(), RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0)
        ),
    }[kind]()


def _save(model, x: np.ndarray, path, zipmap: bool = True):
    onx = skl2onnx.to_onnx(model, x[:1].astype(np.float32), options={"zipmap": zipmap})
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("kind", ["tree", "forest", "extra-trees", "boosting", "scaled-forest"])
def test_probabilities_match_scikit_learn_and_gradients_are_refused(tmp_path, kind, classes):
    x, held_out = _rows(300, seed=0), _rows(200, seed=1)
    model = _estimator(kind).fit(x, _labels(x, classes))
    classifier = load_model(_save(model, x, tmp_path / "model.onnx", zipmap=classes == 2))
    assert "TreeEnsembleClassifier" in {n.op_type for n in onnx.load(tmp_path / "model.onnx").graph.node}
    assert classifier.input_shape == (FEATURES,) and classifier.num_classes == classes and classifier.bounds is None
    expected = torch.from_numpy(model.predict_proba(held_out)).float()
    assert torch.allclose(classifier.proba(torch.from_numpy(held_out)), expected, atol=1e-5)
    assert not classifier.requires_gradients
    with pytest.raises(GradientsUnavailableError, match="saliency needs gradients"):
        classifier.require_gradients("saliency")


def test_a_linear_model_keeps_its_gradients(tmp_path):
    from sklearn.linear_model import LogisticRegression

    x = _rows(200, seed=0)
    classifier = load_model(_save(LogisticRegression().fit(x, _labels(x, 2)), x, tmp_path / "linear.onnx"))
    assert classifier.requires_gradients


def test_audit_skips_the_gradient_checks_of_a_tree_model(tmp_path, monkeypatch):
    from sklearn.ensemble import RandomForestClassifier

    from trustlab.audit.runner import prepare, run_audit
    from trustlab.report.run import RunDirectory

    monkeypatch.delenv("TRUSTLAB_DATA", raising=False)
    train, test = (
        synthetic_tabular(300, FEATURES, decisive=0, seed=0),
        synthetic_tabular(120, FEATURES, decisive=0, seed=1),
    )
    model = RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0).fit(train.x.numpy(), train.y.numpy())
    classifier = load_model(_save(model, train.x.numpy(), tmp_path / "forest.onnx"))
    ctx, planned = prepare(classifier, test, profile="quick")
    skipped = {p.step.name: p.skip_reason for p in planned if p.skip_reason}
    assert set(skipped) == SKIPPED_FOR_TABULAR
    assert all(skipped.values())
    outcome = run_audit(RunDirectory(tmp_path / "run"), ctx, planned, source="forest.onnx")
    assert not [r for r in outcome.run.results.values() if r.kind == "audit.failure"]
    assert {g.axis for g in outcome.scorecard.gates} == {"accuracy", "OOD alarm"}
    assert outcome.scorecard.skipped["adversarial robustness"]
    assert outcome.run.results["accuracy-synthetic-train"].accuracy > 0.8


# ------------------------------------------------------- hand-written ensembles vs onnxruntime ----
def _ensemble(mode: str, transform: str, weights, class_ids, labels, *, missing=None, base=None, as_tensor=False):
    """Two trees over three features (a stump on feature 1; a depth-2 tree on features 2 and 0),
    ``weights`` cycled over the leaves' ``class_ids``."""
    from onnx import TensorProto, helper, numpy_helper

    attrs = {
        "nodes_treeids": [0, 0, 0, 1, 1, 1, 1, 1],
        "nodes_nodeids": [0, 1, 2, 0, 1, 2, 3, 4],
        "nodes_featureids": [1, 0, 0, 2, 0, 0, 0, 0],
        "nodes_modes": [mode, "LEAF", "LEAF", "BRANCH_GT", mode, "LEAF", "LEAF", "LEAF"],
        "nodes_values": [0.5, 0, 0, -0.25, 1.0, 0, 0, 0],
        "nodes_truenodeids": [1, 0, 0, 1, 3, 0, 0, 0],
        "nodes_falsenodeids": [2, 0, 0, 4, 2, 0, 0, 0],
        "nodes_missing_value_tracks_true": missing or [0] * 8,
        "post_transform": transform,
    }
    owners = [(t, n, c) for t, n in [(0, 1), (0, 2), (1, 2), (1, 3), (1, 4)] for c in class_ids]
    attrs["class_treeids"], attrs["class_nodeids"], attrs["class_ids"] = (list(v) for v in zip(*owners))
    attrs["class_weights"] = [weights[i % len(weights)] for i in range(len(owners))]
    if base is not None:
        attrs["base_values"] = base
    if as_tensor:
        for name in ("nodes_values", "class_weights", "base_values"):
            if name in attrs:
                attrs[f"{name}_as_tensor"] = numpy_helper.from_array(np.array(attrs.pop(name), dtype=np.float32))
    strings = isinstance(labels[0], str)
    attrs["classlabels_strings" if strings else "classlabels_int64s"] = labels
    node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph(
        [node],
        "trees",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [
            helper.make_tensor_value_info("label", TensorProto.STRING if strings else TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, None]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    onnx.checker.check_model(model)
    return model


def _inputs() -> np.ndarray:
    """Normal draws with values on the thresholds and NaNs in every feature."""
    x = np.random.default_rng(1).normal(size=(300, 3)).astype(np.float32)
    x[::7, 1], x[::11, 0], x[::4, 2] = 0.5, 1.0, -0.25
    x[::13, 2], x[::17, 1], x[::5, 0] = np.nan, np.nan, np.nan
    return x


def _compare(model, tmp_path, atol=1e-5):
    ort = pytest.importorskip("onnxruntime")
    from trustlab.models.onnx_reader import TreeEnsemble, read_onnx

    x = _inputs()
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": x})[
        1
    ]
    (tmp_path / "trees.onnx").write_bytes(model.SerializeToString())
    module, shape = read_onnx(tmp_path / "trees.onnx")
    trees = [m for m in module.modules() if isinstance(m, TreeEnsemble)]
    assert shape == (3,) and len(trees) == 1
    scores = trees[0](torch.from_numpy(x))
    assert scores.shape == expected.shape
    assert torch.allclose(scores, torch.from_numpy(expected), atol=atol)


@pytest.mark.parametrize(
    ("mode", "transform"),
    [
        ("BRANCH_LEQ", "NONE"),
        ("BRANCH_LT", "SOFTMAX"),
        ("BRANCH_GTE", "LOGISTIC"),
        ("BRANCH_GT", "SOFTMAX_ZERO"),
        ("BRANCH_EQ", "SOFTMAX"),
        ("BRANCH_NEQ", "NONE"),
    ],
)
def test_every_branch_mode_and_post_transform_matches_onnxruntime(tmp_path, mode, transform):
    weights = [0.3, -0.2, 0.0, 0.7, 0.1]
    _compare(_ensemble(mode, transform, weights, [0, 1, 2], [0, 1, 2], base=[0.1, 0.0, -0.2]), tmp_path)


@pytest.mark.parametrize("mode", ["BRANCH_LEQ", "BRANCH_NEQ"])
def test_missing_values_follow_their_tracks_and_tensor_attributes_are_read(tmp_path, mode):
    missing = [1, 0, 0, 0, 1, 0, 0, 0]
    model = _ensemble(mode, "NONE", [0.3, 0.2, 0.5], [0, 1, 2], ["a", "b", "c"], missing=missing, as_tensor=True)
    _compare(model, tmp_path)


@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC"])
@pytest.mark.parametrize("weights", [[0.3, 0.2, 0.5, 0.7, 0.1], [0.3, -0.2, 0.5, -0.7, 0.1]])
def test_two_classes_scored_by_one_column(tmp_path, transform, weights):
    """[1 - s, s] for probabilities, [-s, s] for margins, [1 - p, p] after LOGISTIC."""
    _compare(_ensemble("BRANCH_LEQ", transform, weights, [0], [0, 1], base=[0.1]), tmp_path)


def test_a_damaged_ensemble_is_named_in_one_line(tmp_path):
    model = _ensemble("BRANCH_LEQ", "NONE", [0.5], [0, 1], [0, 1])
    attrs = {a.name: a for a in model.graph.node[0].attribute}
    attrs["nodes_truenodeids"].ints[0] = 9
    (tmp_path / "damaged.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelLoadError, match=r"TreeEnsembleClassifier .*points to a node that does not exist") as info:
        load_model(tmp_path / "damaged.onnx")
    assert "\n" not in str(info.value)
