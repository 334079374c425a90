"""Attribution maps through one interface: ``explain(model, x, target, method=..., batch_size=...)``.

Maps come back shaped like the input (N, C, H, W), except Grad-CAM, which has one channel
(N, 1, H, W). Memory is bounded by ``batch_size`` (default: the classifier's): every method
processes at most that many images per forward/backward pass, samples and steps included.
Maps explain the target class's logit (default target: the predicted class).

Methods (options in brackets, keyword-only):

* ``saliency``: gradient of the target logit with respect to the input (signed).
* ``saliency_abs``: its absolute value (Simonyan et al. 2014).
* ``guided_backprop``: guided backpropagation (Springenberg et al. 2015).
* ``gradcam``: Grad-CAM (Selvaraju et al. 2017) at a layer with 4-D outputs [``layer``: a module
  name from ``named_modules``; default :func:`~trustlab.models.probe.gradcam_layer`, the last
  convolution's activations, found by probing], ReLU-ed and bilinearly upsampled to the input's
  height and width.
* ``guided_gradcam``: guided backpropagation times Grad-CAM [``layer``].
* ``smoothgrad``: mean gradient over noisy copies (Smilkov et al. 2017) [``samples`` = 50,
  ``noise`` = 0.15 of the input range, ``seed`` = 0]. Noisy copies are processed ``batch_size``
  at a time (Captum's default puts all N x samples copies in one batch).
* ``integrated_gradients``: Sundararajan et al. 2017 [``steps`` = 50, ``baseline`` = 0.0], with
  Captum's default Gauss-Legendre quadrature, path points processed ``batch_size`` at a time.
* ``occlusion``: change of the target logit when a window is set to the baseline (Zeiler &
  Fergus 2014) [``window`` = 4, ``stride`` = 2, ``baseline`` = 0.0].
* ``lime`` / ``kernelshap``: LIME (Ribeiro et al. 2016) and Kernel SHAP (Lundberg & Lee 2017)
  over square patches [``patch`` = 4, ``n_samples`` = 300, ``baseline`` = 0.0, ``seed`` = 0];
  each patch's weight is spread over its pixels.

Guided backpropagation (and guided Grad-CAM) modify ``nn.ReLU`` modules' gradients; on a model
that applies ReLU as a function they would equal saliency, so they refuse such models.
TorchScript models work through their Python mirror (:func:`~trustlab.models.probe.hookable`).

SmoothGrad and integrated gradients are computed here (seeded noise, chunked paths); the others
are Captum's implementations.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.validate import positive_int
from trustlab.models.classifier import Classifier
from trustlab.models.probe import find_module, gradcam_layer, hookable, relu_usage

ERR_FUNCTIONAL_RELU = (
    "{method} needs nn.ReLU modules; this model applies ReLU as a function, where the method "
    "would silently equal saliency"
)
ERR_NO_RELU = "{method} needs nn.ReLU modules; this model has no ReLU, where the method would silently equal saliency"


def gradcam_module(model: Classifier, layer: Any) -> nn.Module:
    """The module Grad-CAM reads: ``layer`` given by name (a ``named_modules`` name, as
    :func:`~trustlab.models.probe.gradcam_layer` returns), an ``nn.Module`` of the model (kept for
    backward compatibility), or None for the probe's default (the last convolution's activations)."""
    if isinstance(layer, nn.Module):
        return layer
    return find_module(model, gradcam_layer(model) if layer is None else layer)


def require_relu_modules(model: Classifier, method: str) -> None:
    """Guided backpropagation changes the backward pass of ``nn.ReLU`` modules only (Captum hooks
    them); a ReLU applied as a function keeps its plain gradient, so on a model without ReLU
    modules the map is exactly saliency. Refuse, rather than return saliency under another name,
    when one probe pass runs more ReLU operators than ``nn.ReLU`` module calls."""
    ops, module_calls = relu_usage(model)
    if ops > module_calls:
        raise InputError(ERR_FUNCTIONAL_RELU.format(method=method))
    if ops == 0:
        raise InputError(ERR_NO_RELU.format(method=method))


def _options(method: str, given: dict[str, Any]) -> dict[str, Any]:
    allowed = METHODS[method].options
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) or "no options"
        raise InputError(f"method {method!r} does not take {', '.join(unknown)} (it takes: {accepted})")
    return {**allowed, **given}


def explain(
    model: Classifier,
    x: Any,
    target: Any = None,
    *,
    method: str = "saliency",
    batch_size: int | None = None,
    **options: Any,
) -> torch.Tensor:
    """Attribution maps for ``x`` towards ``target`` (default: the predicted class); see the module doc."""
    if method not in METHODS:
        raise InputError(f"unknown explanation method {method!r}; expected one of: {', '.join(METHODS)}")
    opts = _options(method, options)
    model.require_gradients(method)
    x = model.validate(x)
    target = model.targets(x, target)
    size = model.batch_size if batch_size is None else positive_int(batch_size, "batch_size")
    if METHODS[method].image_only and len(model.input_shape) != 3:
        raise InputError(f"{method} explains images (inputs of shape C x H x W)")
    if x.shape[0] == 0:
        channels = 1 if method == "gradcam" else x.shape[1]
        return torch.zeros((0, channels, *x.shape[2:]))
    frozen = [p for p in model.module.parameters() if p.requires_grad and p.is_leaf]
    for p in frozen:  # no weight gradients: only the input's are needed
        p.requires_grad_(False)
    try:
        with warnings.catch_warnings():  # Captum warns that inputs did not require gradients: they need not
            warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
            return METHODS[method].compute(model, x, target, size, opts).detach().to(x.device)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _chunks(x: torch.Tensor, target: torch.Tensor, size: int):
    for start in range(0, x.shape[0], size):
        yield x[start : start + size], target[start : start + size]


def _device(model: Classifier, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.to(model.device) for t in tensors]


def target_gradient(model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient of each example's target logit with respect to its input (one batch, on device)."""
    x = x.detach().requires_grad_(True)
    selected = model.forward(x).gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(selected, x)
    return grad


def _per_chunk(model, x, target, size, attribute) -> torch.Tensor:
    """``attribute(inputs, targets)`` on ``size`` examples at a time, on the model's device."""
    out = []
    for xb, tb in _chunks(x, target, size):
        xb, tb = _device(model, xb, tb)
        out.append(attribute(xb, tb).cpu())
    return torch.cat(out)


def _saliency(model, x, target, size, opts, absolute=False) -> torch.Tensor:
    from captum.attr import Saliency

    saliency = Saliency(model.forward)
    return _per_chunk(model, x, target, size, lambda xb, tb: saliency.attribute(xb, target=tb, abs=absolute))


def _guided_backprop(model, x, target, size, opts) -> torch.Tensor:
    from captum.attr import GuidedBackprop

    model = hookable(model)
    require_relu_modules(model, "guided_backprop")
    guided = GuidedBackprop(model.as_module())
    return _per_chunk(model, x, target, size, lambda xb, tb: guided.attribute(xb, target=tb))


def _gradcam(model, x, target, size, opts) -> torch.Tensor:
    from captum.attr import LayerAttribution, LayerGradCam

    model = hookable(model)
    cam = LayerGradCam(model.forward, gradcam_module(model, opts["layer"]))

    def attribute(xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        coarse = cam.attribute(xb, target=tb, relu_attributions=True)
        return LayerAttribution.interpolate(coarse, tuple(x.shape[-2:]), interpolate_mode="bilinear")

    return _per_chunk(model, x, target, size, attribute)


def _guided_gradcam(model, x, target, size, opts) -> torch.Tensor:
    from captum.attr import GuidedGradCam

    model = hookable(model)
    require_relu_modules(model, "guided_gradcam")
    guided = GuidedGradCam(model.as_module(), gradcam_module(model, opts["layer"]))
    return _per_chunk(model, x, target, size, lambda xb, tb: guided.attribute(xb, target=tb))


def _smoothgrad(model, x, target, size, opts) -> torch.Tensor:
    samples, noise = int(opts["samples"]), float(opts["noise"])
    if samples < 1 or not noise >= 0:
        raise InputError(f"smoothgrad needs samples >= 1 and noise >= 0, got {samples} and {noise}")
    low, high = model.bounds or (float(x.min()), float(x.max()))
    sigma = noise * (high - low)
    generator = torch.Generator().manual_seed(int(opts["seed"]))
    # one noise tensor per (sample, example), drawn in a fixed order so results do not depend on batch_size
    draws = torch.randn((samples, *x.shape), generator=generator).mul_(sigma)
    total = torch.zeros_like(x)
    per_pass = max(1, size // max(1, min(size, x.shape[0])))  # noisy copies of one chunk per pass
    for start in range(0, x.shape[0], size):
        xb, tb = _device(model, x[start : start + size], target[start : start + size])
        n = xb.shape[0]
        for s0 in range(0, samples, per_pass):
            s1 = min(samples, s0 + per_pass)
            noisy = (xb.unsqueeze(0) + draws[s0:s1, start : start + n].to(xb.device)).reshape(-1, *xb.shape[1:])
            grads = target_gradient(model, noisy, tb.repeat(s1 - s0))
            total[start : start + n] += grads.reshape(s1 - s0, n, *xb.shape[1:]).sum(dim=0).cpu()
    return total / samples


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points in [0, 1] and weights of the ``steps``-point Gauss-Legendre rule (Captum's default)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1.0) / 2.0, weights / 2.0


def _integrated_gradients(model, x, target, size, opts) -> torch.Tensor:
    steps = int(opts["steps"])
    if steps < 1:
        raise InputError(f"integrated_gradients needs steps >= 1, got {steps}")
    alphas, weights = gauss_legendre(steps)
    alphas_t = torch.tensor(alphas, dtype=x.dtype)
    weights_t = torch.tensor(weights, dtype=x.dtype)
    baseline = torch.full_like(x, float(opts["baseline"]))
    total = torch.zeros_like(x)
    per_pass = max(1, size // max(1, min(size, x.shape[0])))  # path points of one chunk per pass
    for start in range(0, x.shape[0], size):
        xb, tb, bb = _device(
            model, x[start : start + size], target[start : start + size], baseline[start : start + size]
        )
        n, delta = xb.shape[0], xb - bb
        shape = (-1,) + (1,) * xb.ndim
        for s0 in range(0, steps, per_pass):
            a = alphas_t[s0 : s0 + per_pass].to(xb.device)
            w = weights_t[s0 : s0 + per_pass].to(xb.device)
            points = (bb.unsqueeze(0) + a.view(shape) * delta.unsqueeze(0)).reshape(-1, *xb.shape[1:])
            grads = target_gradient(model, points, tb.repeat(a.numel())).reshape(a.numel(), n, *xb.shape[1:])
            total[start : start + n] += (w.view(shape) * grads).sum(dim=0).cpu()
    return total * (x - baseline)


def _occlusion(model, x, target, size, opts) -> torch.Tensor:
    from captum.attr import Occlusion

    window, stride = int(opts["window"]), int(opts["stride"])
    if window < 1 or stride < 1:
        raise InputError(f"occlusion needs window >= 1 and stride >= 1, got {window} and {stride}")
    occlusion = Occlusion(model.forward)
    channels = x.shape[1]

    def attribute(xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        return occlusion.attribute(
            xb,
            sliding_window_shapes=(channels, window, window),
            strides=(channels, stride, stride),
            baselines=float(opts["baseline"]),
            target=tb,
            perturbations_per_eval=max(1, size // xb.shape[0]),
        )

    # few examples per chunk; their perturbations fill the rest of each batch
    return _per_chunk(model, x, target, max(1, min(size, 16)), attribute)


def patch_mask(shape: tuple[int, ...], patch: int) -> torch.Tensor:
    """Feature ids of square ``patch`` x ``patch`` patches (shared across channels), shape (1, C, H, W)."""
    channels, height, width = shape
    if patch < 1:
        raise InputError(f"patch must be a positive integer, got {patch}")
    rows = torch.arange(height) // patch
    cols = torch.arange(width) // patch
    ids = rows[:, None] * ((width + patch - 1) // patch) + cols[None, :]
    return ids.expand(1, channels, height, width).clone()


def _surrogate(model, x, target, size, opts, kind: str) -> torch.Tensor:
    from captum.attr import KernelShap, Lime

    explainer = (Lime if kind == "lime" else KernelShap)(model.forward)
    mask = patch_mask(tuple(x.shape[1:]), int(opts["patch"])).to(model.device)
    n_samples = int(opts["n_samples"])
    if n_samples < 2:
        raise InputError(f"{kind} needs n_samples >= 2, got {n_samples}")
    out = []
    with torch.random.fork_rng(devices=[]):  # Captum samples coalitions from the global generator
        torch.manual_seed(int(opts["seed"]))
        for i in progress(range(x.shape[0]), desc=kind, total=x.shape[0], unit="image"):  # one surrogate each
            xb, tb = _device(model, x[i : i + 1], target[i : i + 1])
            out.append(
                explainer.attribute(
                    xb,
                    target=tb,
                    baselines=float(opts["baseline"]),
                    feature_mask=mask,
                    n_samples=n_samples,
                    perturbations_per_eval=min(size, n_samples),
                ).cpu()
            )
    return torch.cat(out)


@dataclass(frozen=True)
class Method:
    """One attribution method: how to compute it, its options with defaults, whether it needs
    images (C x H x W), and whether its maps are signed (drawn red-blue) or non-negative."""

    compute: Callable[..., torch.Tensor]  # (model, x, target, batch_size, options) -> maps
    options: dict[str, Any] = field(default_factory=dict)
    image_only: bool = False
    signed: bool = True


METHODS: dict[str, Method] = {
    "saliency": Method(_saliency),
    "saliency_abs": Method(lambda m, x, t, s, o: _saliency(m, x, t, s, o, absolute=True), signed=False),
    "guided_backprop": Method(_guided_backprop),
    "gradcam": Method(_gradcam, {"layer": None}, image_only=True, signed=False),
    "guided_gradcam": Method(_guided_gradcam, {"layer": None}, image_only=True),
    "smoothgrad": Method(_smoothgrad, {"samples": 50, "noise": 0.15, "seed": 0}),
    "integrated_gradients": Method(_integrated_gradients, {"steps": 50, "baseline": 0.0}),
    "occlusion": Method(_occlusion, {"window": 4, "stride": 2, "baseline": 0.0}, image_only=True),
    "lime": Method(
        lambda m, x, t, s, o: _surrogate(m, x, t, s, o, "lime"),
        {"patch": 4, "n_samples": 300, "baseline": 0.0, "seed": 0},
        image_only=True,
    ),
    "kernelshap": Method(
        lambda m, x, t, s, o: _surrogate(m, x, t, s, o, "kernelshap"),
        {"patch": 4, "n_samples": 300, "baseline": 0.0, "seed": 0},
        image_only=True,
    ),
}
