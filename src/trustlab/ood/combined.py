"""Several detectors combined into one alarm with a false-alarm guarantee.

Each component detector turns an input into a conformal p-value against reference scores of
in-distribution inputs it was not fitted on: ``p_k(x) = (1 + #{reference scores >= s_k(x)}) / (n + 1)``.
The p-values are combined by a rule:

* ``bonferroni``: ``min(1, K * min_k p_k)``;
* ``simes``: ``min_k K p_(k) / k`` over the sorted p-values (Simes 1986; never above Bonferroni's);
* ``fisher``: the tail of ``-2 sum_k log p_k`` under chi-square with 2K degrees of freedom.

The detector's score is ``-log10`` of the combined p-value (higher = more out-of-distribution), so
it plugs into the guard like any other detector, and the guard's conformal threshold, fitted on
further held-out in-distribution inputs, keeps the false-alarm rate at alpha whatever the rule and
however the components depend on each other (the threshold's guarantee needs only exchangeable
scores). Bonferroni's and Simes' p-values are valid on their own too (Simes' under positive
dependence); Fisher's assumes independent components, so use it only through the guard's threshold.

Post-hoc components share one forward pass of the classifier (logits and features); generative
components score the input themselves.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.models.classifier import Classifier
from trustlab.ood.base import Detector, PosthocDetector, make_detector

RULES = ("simes", "bonferroni", "fisher")
DEFAULT_REFERENCE_SHARE = 0.2


def conformal_p_values(reference: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``(1 + #{reference >= s}) / (n + 1)`` for each score ``s`` (``reference`` sorted ascending)."""
    n = reference.shape[0]
    below = torch.searchsorted(reference, scores.to(reference.dtype).contiguous(), right=False)  # reference < s
    return (1.0 + (n - below).to(torch.float64)) / (n + 1.0)


def combine_p_values(p: torch.Tensor, rule: str) -> torch.Tensor:
    """Combined p-value per row of ``p`` (N, K) under ``rule`` (see the module docstring)."""
    k = p.shape[1]
    if rule == "bonferroni":
        return (k * p.amin(dim=1)).clamp(max=1.0)
    if rule == "simes":
        ordered = p.sort(dim=1).values
        ranks = torch.arange(1, k + 1, dtype=p.dtype)
        return (k * ordered / ranks).amin(dim=1).clamp(max=1.0)
    if rule == "fisher":
        from scipy.stats import chi2

        statistic = -2.0 * torch.log(p).sum(dim=1)
        return torch.from_numpy(chi2.sf(statistic.numpy(), 2 * k)).to(p.dtype)
    raise InputError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")


class CombinedDetector(PosthocDetector):
    """Conformal p-values of ``components`` (detectors, fitted or not) combined by ``rule``.

    ``fit(data)`` fits the components that are not fitted yet on a seeded ``1 - reference_share`` of
    ``data`` and takes the reference scores from the rest, which no component fitted on then. An
    already fitted component (e.g. the shipped VAE) keeps its fit; its reference scores come from
    the same held-out share.
    """

    name = "combined"
    score_label = "-log10 combined p-value"
    optional_classifier: ClassVar[bool] = True

    def __init__(
        self,
        classifier: Classifier | None = None,
        *,
        components: list[Any],
        rule: str = "simes",
        reference_share: float = DEFAULT_REFERENCE_SHARE,
        seed: int = 0,
        layer: str | None = None,
        batch_size: int = 256,
    ) -> None:
        if rule not in RULES:
            raise InputError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
        if not 0.0 < reference_share < 1.0:
            raise InputError(f"reference_share must lie in (0, 1), got {reference_share}")
        if not components or len(components) < 2:
            raise InputError("a combination needs at least two component detectors")
        built = [self._component(c, classifier) for c in components]
        posthoc = [c for c in built if isinstance(c, PosthocDetector)]
        if classifier is None:
            if posthoc:
                raise InputError("the combination has post-hoc components: pass the classifier they read")
        else:
            for c in posthoc:
                if c.classifier is not classifier:
                    raise InputError("post-hoc components must read the combination's classifier")
        if classifier is not None:
            super().__init__(classifier, layer=layer, batch_size=batch_size)
        else:
            Detector.__init__(self, batch_size=batch_size)
            self.classifier, self.layer, self._reader = None, layer, None
        self.components = built
        self.rule = rule
        self.reference_share = float(reference_share)
        self.seed = int(seed)
        self.references: list[torch.Tensor] = []
        self.uses_features = any(getattr(c, "uses_features", False) for c in posthoc)
        if self.uses_features:
            layers = {c.layer for c in posthoc if c.uses_features and c.layer is not None} | ({layer} - {None})
            if len(layers) > 1:
                raise InputError(f"feature components read different layers ({', '.join(sorted(layers))})")
            self.layer = next(iter(layers), None)
            for c in posthoc:  # fitted and scored on the same layer's features
                c.layer = self.layer

    @staticmethod
    def _component(spec: Any, classifier: Classifier | None) -> Detector:
        if isinstance(spec, Detector):
            return spec
        if isinstance(spec, dict) and "name" in spec:
            detector = make_detector(spec["name"], classifier, **spec.get("config", {}))
            if spec.get("input_shape") is not None:
                detector.set_fitted(spec["input_shape"], spec.get("bounds"))
            return detector
        raise InputError(f"components must be detectors (or stored specs), got {type(spec).__name__}")

    def config(self) -> dict[str, Any]:
        specs = [
            {
                "name": c.name,
                "config": c.config(),
                "input_shape": None if c.input_shape_ is None else list(c.input_shape_),
                "bounds": None if c.bounds_ is None else list(c.bounds_),
            }
            for c in self.components
        ]
        return {
            "components": specs,
            "rule": self.rule,
            "reference_share": self.reference_share,
            "seed": self.seed,
            "layer": self.layer,
            "batch_size": self.batch_size,
        }

    @property
    def labels(self) -> list[str]:
        """What each component is (its name, and its score where it has several)."""
        return [c.name + (f":{c.score_kind}" if hasattr(c, "score_kind") else "") for c in self.components]

    # ---------------------------------------------------------------- learned state -------------
    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for k, (component, reference) in enumerate(zip(self.components, self.references)):
            out[f"reference{k}"] = reference
            out.update({f"component{k}.{key}": value for key, value in component.state().items()})
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.references = [state[f"reference{k}"].to(torch.float64) for k in range(len(self.components))]
        for k, component in enumerate(self.components):
            prefix = f"component{k}."
            component.load_state({key[len(prefix) :]: v for key, v in state.items() if key.startswith(prefix)})

    def _input_spec(self, x: torch.Tensor) -> tuple[tuple[int, ...], tuple[float, float] | None]:
        if self.classifier is not None:
            return super()._input_spec(x)
        return self.components[0]._input_spec(x)  # no classifier: the inputs the components take

    def _label_classes(self) -> int:
        return self.classifier.num_classes if self.classifier is not None else torch.iinfo(torch.int64).max

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        n = x.shape[0]
        count = max(1, int(round(n * self.reference_share)))
        if n - count < 2:
            raise InputError(f"fitting a combination needs more inputs: {n} leave {n - count} to fit the components")
        order = torch.from_numpy(np.random.default_rng(self.seed).permutation(n))
        reference, rest = order[:count], order[count:]
        for component in self.components:
            if not component.fitted:
                component.fit(x[rest], None if y is None else y[rest])
        self.references = [c.score(x[reference]).to(torch.float64).sort().values for c in self.components]

    # ---------------------------------------------------------------- scoring -------------------
    def _columns(self, x: torch.Tensor, logits: torch.Tensor | None, features: torch.Tensor | None) -> torch.Tensor:
        """(N, K) component scores of one validated batch from its logits and features (post-hoc
        components) or the batch itself (the others, whose inputs are the classifier's)."""
        columns = []
        for c in self.components:
            if isinstance(c, PosthocDetector):
                columns.append(c._score_outputs(logits, features if c.uses_features else None))
            else:
                columns.append(c._score_batch(x))
        return torch.stack([column.double().cpu() for column in columns], dim=1)

    def _combined(self, scores: torch.Tensor) -> torch.Tensor:
        p = torch.stack([conformal_p_values(ref, scores[:, k]) for k, ref in enumerate(self.references)], dim=1)
        return -torch.log10(combine_p_values(p, self.rule).clamp_min(1e-300))

    def _score_outputs(self, logits: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError  # a combination scores through _score_inputs, which also needs the inputs

    def _score_inputs(self, x: torch.Tensor, logits: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        return self._combined(self._columns(x, logits, features))

    def _score_batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:  # generative parts only: no forward pass of a classifier
            return self._score_inputs(x, None, None)
        return super()._score_batch(x)


def parse_combination(spec: str) -> tuple[str, list[str]] | None:
    """``rule[a,b,...]`` -> (rule, component specs); None when ``spec`` is not a combination."""
    text = spec.strip()
    rule, bracket, rest = text.partition("[")
    if not bracket:
        return None
    if rule not in RULES or not rest.endswith("]"):
        raise InputError(f"detector {spec!r}: write a combination as {'|'.join(RULES)}[detector,detector,...]")
    if "[" in rest[:-1]:
        raise InputError(f"detector {spec!r}: a combination cannot contain a combination")
    parts = [p.strip() for p in rest[:-1].split(",") if p.strip()]
    if len(parts) < 2:
        raise InputError(f"detector {spec!r}: a combination needs at least two detectors")
    return rule, parts


__all__ = ["RULES", "CombinedDetector", "combine_p_values", "conformal_p_values", "parse_combination"]
