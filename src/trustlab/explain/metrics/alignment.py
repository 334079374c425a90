"""Alignment: how well each attribution map lines up with its own input image.

A robust model's saliency maps tend to look like the image itself (Etmann et al. 2019); these
metrics put a number on that, per example: :func:`cosine_alignment` (signed, scale-free) and
:func:`etmann_alignment` (the paper's definition, scaled by the image's norm unless normalised).
"""

from __future__ import annotations

from typing import Any

import torch

from trustlab.core.stats import safe_divide
from trustlab.explain.metrics._inputs import _images_and_maps


def cosine_alignment(x: Any, a: Any) -> torch.Tensor:
    """Signed cosine between each image and its map, <x, a> / (||x|| ||a||), in [-1, 1].

    A one-channel map is broadcast over the image's channels first (so it is compared with every
    channel). 0 where the image or the map is all zeros.
    """
    x, a = _images_and_maps(x, a)
    a = a.expand_as(x).flatten(1).double()
    xf = x.flatten(1).double()
    value = safe_divide((xf * a).sum(1), xf.norm(dim=1) * a.norm(dim=1))
    return value.to(x.dtype)


def etmann_alignment(x: Any, grad: Any, *, normalise: bool = False) -> torch.Tensor:
    """Alignment of Etmann et al. (2019), |<x, g>| / ||g||: the length of the image's projection on
    the direction of its saliency map ``g``.

    The paper ("On the connection between adversarial robustness and saliency map
    interpretability", ICML 2019) defines it with the saliency map g = the gradient of the
    predicted class's logit with respect to the input, and the absolute value of the inner
    product; pass that gradient as ``grad`` (its sign then does not matter). It grows with the
    image's norm; ``normalise=True`` divides by ||x|| too, giving |cos(x, g)| in [0, 1], which
    compares images of different brightness. A one-channel ``grad`` is broadcast over channels.
    0 where ``grad`` (or, when normalising, the image) is all zeros.
    """
    x, grad = _images_and_maps(x, grad, a_name="grad")
    g = grad.expand_as(x).flatten(1).double()
    xf = x.flatten(1).double()
    den = g.norm(dim=1) * (xf.norm(dim=1) if normalise else 1.0)
    return safe_divide((xf * g).sum(1).abs(), den).to(x.dtype)


__all__ = ["cosine_alignment", "etmann_alignment"]
