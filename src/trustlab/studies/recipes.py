"""The training recipes of the generalisation study, declared as data.

Every recipe trains the reference architecture (``mnist_cnn``: conv 32/64, fc 1024) on the same
training data with the same schedule (Adam, learning rate 1e-3 decayed by a cosine, batches of 64,
cross-entropy, no augmentation: the ``baseline``) and changes one thing, or one family of things for
the augmentation combinations. What each changes is in its ``summary``; the settings are the
dataclass fields, so a recipe's identity (and its cache key) is its settings, not its name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trustlab.core.exceptions import InputError
from trustlab.data.augment import Augmentation

ARCHITECTURE = "mnist_cnn"
SHIFT_PIXELS = 2  # the reference CNN's own augmentation
ROTATE_DEGREES = 15.0
ELASTIC_ALPHA, ELASTIC_SIGMA = 34.0, 4.0  # Simard et al. (2003)'s MNIST setting
NOISE_SIGMA = 0.3


@dataclass(frozen=True)
class Recipe:
    """One way to train the digit classifier (see the module docstring for what is shared)."""

    name: str
    summary: str
    batch_norm: bool = False
    dropout: float = 0.0
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    augmentation: Augmentation = field(default_factory=Augmentation)
    optimiser: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0

    def settings(self) -> dict[str, Any]:
        """Everything that changes the trained weights (not the name or the summary), JSON-able."""
        out = dataclasses.asdict(self)
        del out["name"], out["summary"]
        return out

    def architecture_options(self) -> dict[str, Any]:
        """The architecture settings this recipe turns on (none for the plain reference CNN)."""
        options: dict[str, Any] = {}
        if self.batch_norm:
            options["batch_norm"] = True
        if self.dropout:
            options["dropout"] = self.dropout
        return options

    def training_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`trustlab.models.training.train` this recipe sets."""
        return {
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "optimiser": self.optimiser,
            "loss": self.loss,
            "label_smoothing": self.label_smoothing,
            "focal_gamma": self.focal_gamma,
            "augment": self.augmentation if self.augmentation.active else None,
        }


_ALL_AUGMENTATIONS = Augmentation(
    shift=SHIFT_PIXELS,
    rotate_degrees=ROTATE_DEGREES,
    elastic_alpha=ELASTIC_ALPHA,
    elastic_sigma=ELASTIC_SIGMA,
    noise_sigma=NOISE_SIGMA,
)

RECIPES: tuple[Recipe, ...] = (
    Recipe("baseline", "reference CNN, Adam 1e-3 (cosine), cross-entropy, no augmentation"),
    Recipe("batch_norm", "+ batch normalisation after each conv and the hidden layer", batch_norm=True),
    Recipe("dropout", "+ dropout 0.5 before the last layer", dropout=0.5),
    Recipe("label_smoothing", "cross-entropy with label smoothing 0.1", label_smoothing=0.1),
    Recipe("focal", "focal loss, gamma 2", loss="focal", focal_gamma=2.0),
    Recipe("shift", f"+ random shifts up to {SHIFT_PIXELS} px", augmentation=Augmentation(shift=SHIFT_PIXELS)),
    Recipe(
        "rotate",
        f"+ random rotations up to {ROTATE_DEGREES:g} degrees",
        augmentation=Augmentation(rotate_degrees=ROTATE_DEGREES),
    ),
    Recipe(
        "elastic",
        f"+ elastic deformations (alpha {ELASTIC_ALPHA:g}, sigma {ELASTIC_SIGMA:g} px)",
        augmentation=Augmentation(elastic_alpha=ELASTIC_ALPHA, elastic_sigma=ELASTIC_SIGMA),
    ),
    Recipe(
        "noise",
        f"+ Gaussian noise, sigma drawn up to {NOISE_SIGMA:g}",
        augmentation=Augmentation(noise_sigma=NOISE_SIGMA),
    ),
    Recipe(
        "shift_rotate",
        "+ shifts and rotations",
        augmentation=Augmentation(shift=SHIFT_PIXELS, rotate_degrees=ROTATE_DEGREES),
    ),
    Recipe("all_augment", "+ elastic, rotations, shifts and noise together", augmentation=_ALL_AUGMENTATIONS),
    Recipe("sgd", "SGD with momentum 0.9, learning rate 0.05 (cosine)", optimiser="sgd", learning_rate=0.05),
    Recipe("adamw", "AdamW, decoupled weight decay 0.05", optimiser="adamw", weight_decay=0.05),
)
BASELINE = "baseline"
_BY_NAME = {recipe.name: recipe for recipe in RECIPES}


def check_recipes(names: Any = None) -> tuple[Recipe, ...]:
    """The recipes named (default: all, in the table's order), the baseline always first (every
    difference is measured against it); one-line error for an unknown name."""
    if names is None:
        return RECIPES
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise InputError(f"unknown recipe {unknown[0]!r}; expected one of: {', '.join(_BY_NAME)}")
    wanted = {BASELINE, *names}
    return tuple(recipe for recipe in RECIPES if recipe.name in wanted)
