"""A WGAN-GP with an inverter network as an OOD detector (Zhao, Dua & Singh 2018).

A generator G learns the training images from a Gaussian latent (Wasserstein loss with
gradient penalty, Gulrajani et al. 2017); an inverter I then learns to map images back to the
latent, minimising ||G(I(x)) - x||^2 + lam ||I(G(z)) - z||^2. An input the generator cannot
produce does not survive the round trip. Two scores:

- ``delta_z``: latent distance ||I(G(I(x))) - I(x)||;
- ``recon``: reconstruction error ||x - G(I(x))|| (L2 over pixels);
- ``regret``: the likelihood-regret correction carried over to the inverter (after Xiao, Yan &
  Amit 2020, see :mod:`~trustlab.ood.generative.vae`): how much lower the squared reconstruction
  error gets when the latent is optimised for this one input (``regret_steps`` Adam steps from
  I(x)) than the inverter's own answer, ||x - G(I(x))||^2 - min_z ||x - G(z)||^2. A stroke-like
  input the generator can nearly draw, but the inverter never learned to map, leaves a large gain;
  a plain reconstruction error scores it as in-distribution. Costs ``regret_steps`` generator
  passes forward and back.

Only G and I are kept after training; the critic is discarded.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.ood.base import MultiScoreDetector, require_positive_ints
from trustlab.ood.generative.latent import lowest_loss


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] % 4:
        raise InputError(f"the WGAN detector needs square images (C, H, H) with H divisible by 4, got {shape}")
    return shape[0], shape[1] // 4


class Generator(nn.Module):
    """Maps a Gaussian latent to an image (C, 4 * side, 4 * side) in [0, 1] through two transposed
    convolutions."""

    def __init__(self, *, in_channels: int, side: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * width * side * side),
            nn.BatchNorm1d(2 * width * side * side),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, side, side)),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, in_channels, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def _encoder(in_channels: int, side: int, width: int, out: int, hidden: int | None = None) -> nn.Sequential:
    """Two stride-2 convolutions and a linear head (critic: hidden=None; inverter: one hidden layer)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
    ]
    if hidden:
        layers += [nn.Linear(2 * width * side * side, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out)]
    else:
        layers.append(nn.Linear(2 * width * side * side, out))
    return nn.Sequential(*layers)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator):
    """Mean of (||grad critic(mix)|| - 1)^2 on random interpolates of real and fake images."""
    mix = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), generator=generator)
    points = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).square().mean()


class WGANInverter(MultiScoreDetector):
    """WGAN-GP generator + inverter, scored by latent distance (``"delta_z"``) or reconstruction (``"recon"``)."""

    name = "wgan"
    scores = {
        "delta_z": "WGAN latent distance (delta z)",
        "recon": "WGAN reconstruction error (L2)",
        "regret": "WGAN reconstruction regret (squared L2)",
    }

    def __init__(
        self,
        *,
        score: str = "delta_z",
        latent_dim: int = 64,
        width: int = 32,
        gan_steps: int = 2000,
        critic_iters: int = 5,
        gp_weight: float = 10.0,
        inverter_steps: int = 2000,
        latent_weight: float = 0.1,
        train_batch_size: int = 64,
        learning_rate: float = 1e-4,
        inverter_learning_rate: float = 1e-3,
        seed: int = 0,
        regret_steps: int = 30,
        regret_learning_rate: float = 0.05,
        batch_size: int = 256,
    ) -> None:
        super().__init__(score=score, batch_size=batch_size)
        require_positive_ints(
            regret_steps=regret_steps,
            latent_dim=latent_dim,
            width=width,
            gan_steps=gan_steps,
            critic_iters=critic_iters,
            inverter_steps=inverter_steps,
            train_batch_size=train_batch_size,
        )
        self.latent_dim, self.width = int(latent_dim), int(width)
        self.gan_steps, self.critic_iters, self.inverter_steps = int(gan_steps), int(critic_iters), int(inverter_steps)
        self.gp_weight, self.latent_weight = float(gp_weight), float(latent_weight)
        self.train_batch_size = int(train_batch_size)
        self.learning_rate, self.inverter_learning_rate = float(learning_rate), float(inverter_learning_rate)
        if not float(regret_learning_rate) > 0:
            raise InputError(f"regret_learning_rate must be positive, got {regret_learning_rate}")
        self.regret_steps, self.regret_learning_rate = int(regret_steps), float(regret_learning_rate)
        self.seed = int(seed)
        self.generator_: Generator | None = None
        self.inverter_: nn.Module | None = None
        self.history_: dict[str, list[float]] = {}
        self.fit_seconds_: float | None = None

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "latent_dim": self.latent_dim,
            "width": self.width,
            "gan_steps": self.gan_steps,
            "critic_iters": self.critic_iters,
            "gp_weight": self.gp_weight,
            "inverter_steps": self.inverter_steps,
            "latent_weight": self.latent_weight,
            "train_batch_size": self.train_batch_size,
            "learning_rate": self.learning_rate,
            "inverter_learning_rate": self.inverter_learning_rate,
            "seed": self.seed,
            "regret_steps": self.regret_steps,
            "regret_learning_rate": self.regret_learning_rate,
        }

    def _networks(self, shape: tuple[int, ...]) -> tuple[Generator, nn.Module, nn.Module]:
        channels, side = _check_shape(shape)
        g = Generator(in_channels=channels, side=side, latent_dim=self.latent_dim, width=self.width)
        critic = _encoder(channels, side, self.width, 1)
        inverter = _encoder(channels, side, self.width, self.latent_dim, hidden=512)
        return g, critic, inverter

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        start_time = time.perf_counter()
        rng = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            g, critic, inverter = self._networks(tuple(x.shape[1:]))
        n, b = x.shape[0], min(self.train_batch_size, x.shape[0])

        def real_batch() -> torch.Tensor:
            return x[torch.randint(0, n, (b,), generator=rng)]

        def latent() -> torch.Tensor:
            return torch.randn((b, self.latent_dim), generator=rng)

        opt_g = torch.optim.Adam(g.parameters(), lr=self.learning_rate, betas=(0.5, 0.9))
        opt_c = torch.optim.Adam(critic.parameters(), lr=self.learning_rate, betas=(0.5, 0.9))
        self.history_ = {"critic_wasserstein": [], "inverter_loss": []}
        g.train()
        bar = progress(range(self.gan_steps), desc="wgan: training", total=self.gan_steps, unit="step")
        for step in bar:
            for _ in range(self.critic_iters):
                real = real_batch()
                with torch.no_grad():
                    fake = g(latent())
                distance = critic(real).mean() - critic(fake).mean()
                loss_c = -distance + self.gp_weight * gradient_penalty(critic, real, fake, rng)
                opt_c.zero_grad(set_to_none=True)
                loss_c.backward()
                opt_c.step()
            loss_g = -critic(g(latent())).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            self.history_["critic_wasserstein"].append(distance.item())
            if step % 50 == 0:
                bar.set_postfix(wasserstein=f"{distance.item():.3f}")
        g.eval()
        for p in g.parameters():
            p.requires_grad_(False)
        opt_i = torch.optim.Adam(inverter.parameters(), lr=self.inverter_learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt_i, T_max=self.inverter_steps)
        bar = progress(range(self.inverter_steps), desc="wgan: inverter", total=self.inverter_steps, unit="step")
        for step in bar:
            real, z = real_batch(), latent()
            with torch.no_grad():
                fake = g(z)
            image_loss = (g(inverter(real)) - real).flatten(1).square().sum(dim=1).mean()
            latent_loss = (inverter(fake) - z).square().sum(dim=1).mean()
            loss = image_loss + self.latent_weight * latent_loss
            opt_i.zero_grad(set_to_none=True)
            loss.backward()
            opt_i.step()
            schedule.step()
            self.history_["inverter_loss"].append(loss.item())
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.2f}")
        self.generator_, self.inverter_ = g, inverter.eval()
        self.fit_seconds_ = time.perf_counter() - start_time

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"generator.{k}": v for k, v in self.generator_.state_dict().items()}
        out.update({f"inverter.{k}": v for k, v in self.inverter_.state_dict().items()})
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        g, _, inverter = self._networks(self.input_shape_)
        g.load_state_dict({k[10:]: v for k, v in state.items() if k.startswith("generator.")})
        inverter.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("inverter.")})
        self.generator_, self.inverter_ = g.eval(), inverter.eval()

    def _score_batch(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inverter_(x)
        reconstruction = self.generator_(z)
        if self.score_kind == "recon":
            return (reconstruction - x).flatten(1).norm(dim=1)
        if self.score_kind == "regret":
            error = (reconstruction - x).flatten(1).square().sum(dim=1)
            best = lowest_loss(
                lambda latent: (self.generator_(latent) - x).flatten(1).square().sum(dim=1),
                z,
                steps=self.regret_steps,
                learning_rate=self.regret_learning_rate,
            )
            return (error - best).clamp_min(0.0)
        return (self.inverter_(reconstruction) - z).norm(dim=1)
