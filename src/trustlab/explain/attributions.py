"""Attribution maps through one interface: ``explain(model, x, target, method=..., batch_size=...)``.

Backed by Captum. Memory is bounded by ``batch_size`` (default: the classifier's). Maps come
back shaped like the input, except where a method documents otherwise.

Methods now:
* ``gradcam``: Grad-CAM (Selvaraju et al. 2017) at a convolutional layer (default: the model's
  last ``nn.Conv2d``), ReLU-ed and bilinearly upsampled to the input's height and width; one
  channel, shape (N, 1, H, W).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trustlab.exceptions import InputError
from trustlab.models.classifier import Classifier

METHODS = ("gradcam",)


def last_conv_layer(module: nn.Module) -> nn.Module:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise InputError("Grad-CAM needs a convolutional layer; this model has no nn.Conv2d (pass layer=...)")
    return convs[-1]


def _targets(model: Classifier, x: torch.Tensor, target: Any) -> torch.Tensor:
    if target is None:
        return model.predict(x)
    target = torch.as_tensor(target).long()
    if target.ndim == 0:
        target = target.expand(x.shape[0])
    if target.shape != (x.shape[0],):
        raise InputError(f"target must be one class or {x.shape[0]} classes, got shape {tuple(target.shape)}")
    if (target < 0).any() or (target >= model.num_classes).any():
        raise InputError(f"target classes must lie in 0..{model.num_classes - 1}")
    return target


def explain(
    model: Classifier,
    x: Any,
    target: Any = None,
    *,
    method: str = "gradcam",
    batch_size: int | None = None,
    layer: nn.Module | None = None,
) -> torch.Tensor:
    """Attribution maps for ``x`` towards ``target`` (default: the predicted class)."""
    if method not in METHODS:
        raise InputError(f"unknown explanation method {method!r}; expected one of: {', '.join(METHODS)}")
    model.require_gradients(method)
    x = model.validate(x)
    target = _targets(model, x, target)
    size = batch_size or model.batch_size
    if len(model.input_shape) != 3:
        raise InputError("Grad-CAM explains images (inputs of shape C x H x W)")
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(model.forward, layer or last_conv_layer(model.module))
    maps = []
    for start in range(0, x.shape[0], size):
        xb = x[start : start + size].to(model.device)
        tb = target[start : start + size].to(model.device)
        attribution = cam.attribute(xb, target=tb, relu_attributions=True)
        upsampled = LayerAttribution.interpolate(attribution, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        maps.append(upsampled.detach().to(x.device))
    return torch.cat(maps) if maps else torch.zeros((0, 1, *x.shape[-2:]))
