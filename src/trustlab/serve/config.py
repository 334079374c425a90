"""The alarm service's settings: one frozen value, validated once, printable without its secrets.

Nothing here imports the web stack, so ``trustlab serve --check`` and the CLI's option parsing
work without the ``serve`` extra. API keys are held only as SHA-256 digests (see
:mod:`trustlab.serve.auth`): the configuration can be printed, logged or compared in tests
without ever holding a key in clear.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trustlab.core.exceptions import InputError
from trustlab.core.validate import positive_int

DEFAULT_DB = "sqlite:///trustlab-alarms.sqlite"
LOOPBACK_NAMES = ("localhost",)

ERR_NO_KEYS = (
    "refusing to serve on {host!r} without API keys: give --api-keys-file or set TRUSTLAB_API_KEYS, "
    "or bind a loopback address (127.0.0.1, ::1)"
)
ERR_RANGE = "{name} must be {expected}, got {got!r}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a literal address or ``localhost``) only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


@dataclass(frozen=True)
class ServeConfig:
    """Everything the service needs; the defaults suit one MNIST-sized model on a small machine.

    ``max_batch`` inputs or ``max_wait_ms`` after the oldest queued request, whichever comes
    first, make one model call. ``queue_size`` bounds the requests waiting for the model; beyond
    it a request gets 503 with Retry-After. ``timeout_s`` bounds the time one request waits for
    its answer (503 too). ``db`` is a SQLAlchemy URL for the alarm record. The drift test runs
    over the last ``drift_window`` scored inputs at significance ``drift_level``.
    """

    guard: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_key_digests: tuple[bytes, ...] = field(default=(), repr=False)
    api_keys_source: str = "none"
    max_batch: int = 64
    max_wait_ms: float = 2.0
    queue_size: int = 256
    max_body_bytes: int = 4 * 1024 * 1024
    max_inputs: int = 256
    timeout_s: float = 10.0
    db: str = DEFAULT_DB
    drift_window: int = 1000
    drift_level: float = 0.001
    retry_after_s: int = 1
    log_level: str = "info"

    def __post_init__(self) -> None:
        object.__setattr__(self, "guard", Path(self.guard))
        for name in ("max_batch", "queue_size", "max_body_bytes", "max_inputs", "drift_window"):
            positive_int(getattr(self, name), name)
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InputError(ERR_RANGE.format(name="port", expected="an integer in 0..65535", got=self.port))
        _positive_number("max_wait_ms", self.max_wait_ms, allow_zero=True)
        _positive_number("timeout_s", self.timeout_s)
        if not 0.0 < float(self.drift_level) < 1.0:
            raise InputError(ERR_RANGE.format(name="drift_level", expected="in (0, 1)", got=self.drift_level))
        positive_int(self.retry_after_s, "retry_after_s")
        if not isinstance(self.db, str) or "://" not in self.db:
            raise InputError(
                ERR_RANGE.format(name="db", expected="a SQLAlchemy URL (e.g. sqlite:///a.db)", got=self.db)
            )

    def __repr__(self) -> str:  # the description's, so a database password never shows
        return "ServeConfig(" + ", ".join(f"{k}={v!r}" for k, v in self.describe().items()) + ")"

    def check_binding(self) -> None:
        """No keys means loopback only: an open alarm service must not be reachable from outside."""
        if not self.api_key_digests and not is_loopback(self.host):
            raise InputError(ERR_NO_KEYS.format(host=self.host))

    def describe(self) -> dict[str, Any]:
        """The effective configuration, JSON-able, with the keys replaced by their count and source."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("api_key_digests", "api_keys_source"):
                continue
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
        out["api_keys"] = f"{len(self.api_key_digests)} key(s) from {self.api_keys_source}"
        out["db"] = redact_url(self.db)
        return out


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for printing and logging)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, location = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{location}"


def _positive_number(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise InputError(ERR_RANGE.format(name=name, expected=expected, got=value))
