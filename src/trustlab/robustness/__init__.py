"""Robustness: how small a perturbation flips each prediction, per example and per class.

* ``attacks``: FGSM, PGD, APGD-CE, FMN, Square behind one ``Attack.attack(model, x, y, eps=..., mask=...)``;
* ``search.minimal_eps``: batched per-example bisection for the minimal eps;
* ``profile``: per-class statistics with bootstrap intervals, and the JSON result;
* ``regions``: object vs background perturbation via Grad-CAM;
* ``evaluate.robust_accuracy``: robust accuracy at fixed budgets.
"""
