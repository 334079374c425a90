"""Train the generative OOD detectors shipped in trustlab (deterministic given the seed).

Both learn the reference MNIST CNN's training data, the 5,000-image MNIST training sample:
- the convolutional VAE (latent 16, 30 epochs, Adam 1e-3 cosine, batch 128, seed 0);
- its background model for the likelihood ratio (the same VAE and settings, trained on images whose
  pixels are each replaced by uniform noise with probability 0.2, Ren et al. 2019);
- the WGAN-GP (width 32, latent 64, 2,000 generator steps x 5 critic steps, gradient penalty 10,
  Adam 1e-4 betas 0.5/0.9, batch 64) and its inverter (2,000 steps, Adam 1e-3 cosine, latent
  weight 0.1), seed 0.
Writes each detector artefact and a JSON record (settings, training curve, wall time, digests).

    python scripts/train_reference_detectors.py --data-dir ../shared/data [--only vae|vae_background|wgan]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trustlab.core.files import atomic_write_json
from trustlab.data import load_dataset
from trustlab.models.classifier import tensors_sha256
from trustlab.ood.base import save_detector
from trustlab.ood.generative import VAEDetector, WGANInverter
from trustlab.ood.generative.ratio import DEFAULT_PERTURB_RATE

OUT = Path(__file__).resolve().parents[1] / "src" / "trustlab" / "ood" / "weights"
BUILDERS = {
    "vae": VAEDetector,
    "vae_background": lambda seed: VAEDetector(seed=seed, perturb_rate=DEFAULT_PERTURB_RATE),
    "wgan": WGANInverter,
}


def _thinned(history: list[float] | dict[str, list[float]], every: int = 10):
    """Per-epoch curves as they are; per-step curves (the WGAN's) every ``every`` steps."""
    if isinstance(history, dict):
        return {k: [round(v, 4) for v in values[::every]] for k, values in history.items()}
    return [round(v, 4) for v in history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: TRUSTLAB_DATA)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the detector artefacts and records")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (fixed for reproducibility)")
    parser.add_argument("--only", choices=sorted(BUILDERS), default=None, help="train one detector only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train_set = load_dataset("mnist", "train", root=args.data_dir)
    for name, builder in BUILDERS.items():
        if args.only and name != args.only:
            continue
        detector = builder(seed=0).fit(train_set)
        path = save_detector(detector, args.out / f"{name}_mnist.safetensors")
        record = {
            "detector": name,
            "config": detector.config(),
            "history": _thinned(detector.history_),
            "fit_seconds": round(detector.fit_seconds_, 1),
            "train_data": f"{train_set.name}/{train_set.split}",
            "train_data_sha256": train_set.sha256,
            # the weights' digest: safetensors may order the file's metadata differently per process
            "state_sha256": tensors_sha256(detector.state()),
            "torch": torch.__version__,
            "threads": args.threads,
        }
        atomic_write_json(args.out / f"{name}_mnist.json", record)
        print(json.dumps({k: record[k] for k in ("detector", "fit_seconds", "state_sha256")}), path)


if __name__ == "__main__":
    main()
