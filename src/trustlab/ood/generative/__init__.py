"""Generative detectors: trained on in-distribution inputs only, model-agnostic."""

from trustlab.ood.generative.complexity import ComplexityCorrected, complexity_bits
from trustlab.ood.generative.ratio import LikelihoodRatio
from trustlab.ood.generative.vae import VAEDetector
from trustlab.ood.generative.wgan import WGANInverter

__all__ = ["ComplexityCorrected", "LikelihoodRatio", "VAEDetector", "WGANInverter", "complexity_bits"]
