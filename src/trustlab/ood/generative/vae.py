"""A convolutional variational autoencoder (Kingma & Welling 2014) as an OOD detector.

Trained on in-distribution images only, with a Bernoulli decoder (binary cross-entropy, the
usual choice for [0, 1] images). Scores, all in bits per image and deterministic (the latent is
the encoder's mean, so the same input always gets the same score):

- ``recon``: reconstruction loss, BCE(x, decoder(mean latent));
- ``nelbo``: negative ELBO at the mean latent, reconstruction loss + KL(q(z|x) || N(0, I));
- ``regret``: likelihood regret (after Xiao, Yan & Amit 2020): how much lower the negative ELBO
  gets when the latent mean is optimised for this one input (``regret_steps`` Adam steps from the
  encoder's mean, the encoder's variance kept) than the encoder's own answer. The encoder learned
  to serve in-distribution inputs, so they leave little to gain; an input the model can explain
  well but the encoder was never trained on (simple strokes, other glyphs) leaves more. Xiao et al.
  optimise the encoder's weights per input; optimising the latent directly is the same idea
  vectorised over a batch (each input's gradient is its own). Costs ``regret_steps`` decoder
  passes forward and back.

``perturb_rate`` trains a *background* model (Ren et al. 2019): every training pixel is replaced by
a uniform random value with that probability, so the model learns the images' low-level statistics
and little of their shapes; :class:`~trustlab.ood.generative.ratio.LikelihoodRatio` subtracts its
score from the foreground model's.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.ood.base import MultiScoreDetector, require_positive_ints
from trustlab.ood.generative.latent import lowest_loss

LN2 = math.log(2.0)


class ConvVAE(nn.Module):
    """Two stride-2 convolutions down to a Gaussian latent, two transposed convolutions back."""

    def __init__(
        self, *, in_channels: int = 1, image_size: int = 28, latent_dim: int = 16, channels: tuple[int, int] = (32, 64)
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise InputError(f"the VAE needs an image side divisible by 4, got {image_size}")
        c1, c2 = channels
        side = image_size // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c1, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 4, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * side * side, 256),
            nn.ReLU(),
        )
        self.to_mean = nn.Linear(256, latent_dim)
        self.to_logvar = nn.Linear(256, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 256),
            nn.ReLU(),
            nn.Linear(256, c2 * side * side),
            nn.ReLU(),
            nn.Unflatten(1, (c2, side, side)),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, in_channels, 4, 2, 1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mean(h), self.to_logvar(h).clamp(-20.0, 10.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the Bernoulli means."""
        return self.decoder(z)


def _bce_per_image(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


def _kl_per_image(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum(dim=1)


class VAEDetector(MultiScoreDetector):
    """Convolutional VAE scored by reconstruction loss (``score="recon"``) or negative ELBO (``"nelbo"``)."""

    name = "vae"
    scores = {
        "recon": "VAE reconstruction loss (bits)",
        "nelbo": "VAE negative ELBO (bits)",
        "regret": "VAE likelihood regret (bits)",
    }

    def __init__(
        self,
        *,
        score: str = "nelbo",
        latent_dim: int = 16,
        channels: tuple[int, int] | list[int] = (32, 64),
        epochs: int = 30,
        train_batch_size: int = 128,
        learning_rate: float = 1e-3,
        seed: int = 0,
        perturb_rate: float = 0.0,
        regret_steps: int = 30,
        regret_learning_rate: float = 0.1,
        batch_size: int = 256,
    ) -> None:
        super().__init__(score=score, batch_size=batch_size)
        require_positive_ints(
            latent_dim=latent_dim, epochs=epochs, train_batch_size=train_batch_size, regret_steps=regret_steps
        )
        if not 0.0 <= float(perturb_rate) < 1.0:
            raise InputError(f"perturb_rate must lie in [0, 1), got {perturb_rate}")
        if not float(regret_learning_rate) > 0:
            raise InputError(f"regret_learning_rate must be positive, got {regret_learning_rate}")
        self.perturb_rate = float(perturb_rate)
        self.regret_steps = int(regret_steps)
        self.regret_learning_rate = float(regret_learning_rate)
        self.latent_dim = int(latent_dim)
        self.channels = tuple(int(c) for c in channels)
        self.epochs = int(epochs)
        self.train_batch_size = int(train_batch_size)
        self.learning_rate = float(learning_rate)
        self.seed = int(seed)
        self.module_: ConvVAE | None = None
        self.history_: list[float] = []
        self.fit_seconds_: float | None = None

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "latent_dim": self.latent_dim,
            "channels": list(self.channels),
            "epochs": self.epochs,
            "train_batch_size": self.train_batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "perturb_rate": self.perturb_rate,
            "regret_steps": self.regret_steps,
            "regret_learning_rate": self.regret_learning_rate,
        }

    def _build(self, shape: tuple[int, ...]) -> ConvVAE:
        if len(shape) != 3 or shape[1] != shape[2]:
            raise InputError(f"the VAE detector needs square images (C, H, H), got input shape {shape}")
        return ConvVAE(in_channels=shape[0], image_size=shape[1], latent_dim=self.latent_dim, channels=self.channels)

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        start_time = time.perf_counter()
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = self._build(tuple(x.shape[1:]))
        optimiser = torch.optim.Adam(module.parameters(), lr=self.learning_rate)
        steps_per_epoch = math.ceil(x.shape[0] / self.train_batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=self.epochs * steps_per_epoch)
        module.train()
        self.history_ = []
        bar = progress(range(self.epochs), desc="vae: training", total=self.epochs, unit="epoch")
        for _ in bar:
            order = torch.randperm(x.shape[0], generator=generator)
            total = 0.0
            for start in range(0, x.shape[0], self.train_batch_size):
                batch = x[order[start : start + self.train_batch_size]]
                if self.perturb_rate:  # the background model sees pixels replaced by uniform noise
                    hit = torch.rand(batch.shape, generator=generator) < self.perturb_rate
                    batch = torch.where(hit, torch.rand(batch.shape, generator=generator), batch)
                mean, logvar = module.encode(batch)
                noise = torch.randn(mean.shape, generator=generator)
                z = mean + noise * (0.5 * logvar).exp()
                loss = (_bce_per_image(module.decode(z), batch) + _kl_per_image(mean, logvar)).mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * batch.shape[0]
            self.history_.append(total / x.shape[0] / LN2)
            bar.set_postfix(nelbo_bits=f"{self.history_[-1]:.1f}")
        self.module_ = module.eval()
        self.fit_seconds_ = time.perf_counter() - start_time

    def state(self) -> dict[str, torch.Tensor]:
        return dict(self.module_.state_dict())

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        module = self._build(self.input_shape_)
        module.load_state_dict(state)
        self.module_ = module.eval()

    def _score_batch(self, x: torch.Tensor) -> torch.Tensor:
        mean, logvar = self.module_.encode(x)
        bits = _bce_per_image(self.module_.decode(mean), x)
        if self.score_kind == "recon":
            return bits / LN2
        nelbo = bits + _kl_per_image(mean, logvar)
        if self.score_kind == "nelbo":
            return nelbo / LN2
        return (nelbo - self._optimised_nelbo(x, mean, logvar)).clamp_min(0.0) / LN2

    def _optimised_nelbo(self, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The lowest negative ELBO (nats) over the latent mean found in ``regret_steps`` Adam steps
        from the encoder's, the encoder's variance kept."""
        logvar = logvar.detach()
        return lowest_loss(
            lambda latent: _bce_per_image(self.module_.decode(latent), x) + _kl_per_image(latent, logvar),
            mean,
            steps=self.regret_steps,
            learning_rate=self.regret_learning_rate,
        )
