"""API keys: where they come from, and checking one in constant time.

Keys are read from a file (one per line; blank lines and ``#`` comments ignored) and/or the
environment variable ``TRUSTLAB_API_KEYS`` (separated by commas or white space), and kept only
as SHA-256 digests. A presented key is hashed and compared with :func:`hmac.compare_digest`
against *every* configured digest, without stopping at a match: the time taken depends neither
on how much of a key was right nor on which key matched, and comparing fixed-length digests
does not reveal the keys' lengths either. Keys are never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from trustlab.core.exceptions import InputError

ENV_VAR = "TRUSTLAB_API_KEYS"
HEADER = "x-api-key"
MIN_KEY_LENGTH = 16
_SEPARATORS = re.compile(r"[\s,]+")

ERR_FILE = "cannot read API keys from {path}: {reason}"
ERR_EMPTY = "{source} holds no API key"
ERR_SHORT = "API keys must be at least {n} characters long; {source} holds a shorter one"


def digest(key: str | bytes) -> bytes:
    """SHA-256 of a key: keys are kept and compared only as digests, never as text."""
    return hashlib.sha256(key.encode("utf-8") if isinstance(key, str) else key).digest()


def _keys_in_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(ERR_FILE.format(path=path, reason=type(exc).__name__)) from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def load_api_keys(
    keys_file: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None
) -> tuple[tuple[bytes, ...], str]:
    """The digests of the keys in ``keys_file`` and in ``$TRUSTLAB_API_KEYS`` (together), and a
    description of where they came from (for ``--check``). A named file without keys is an error."""
    environ = os.environ if environ is None else environ
    keys: list[str] = []
    sources: list[str] = []
    if keys_file is not None:
        found = _keys_in_file(Path(keys_file))
        if not found:
            raise InputError(ERR_EMPTY.format(source=f"API keys file {keys_file}"))
        _check_lengths(found, f"API keys file {keys_file}")
        keys += found
        sources.append(f"file {keys_file}")
    from_env = [k for k in _SEPARATORS.split(environ.get(ENV_VAR, "")) if k]
    if from_env:
        _check_lengths(from_env, f"${ENV_VAR}")
        keys += from_env
        sources.append(f"${ENV_VAR}")
    unique = tuple(dict.fromkeys(digest(k) for k in keys))
    return unique, " and ".join(sources) or "none"


def _check_lengths(keys: Iterable[str], source: str) -> None:
    if any(len(k) < MIN_KEY_LENGTH for k in keys):
        raise InputError(ERR_SHORT.format(n=MIN_KEY_LENGTH, source=source))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``."""
    key = headers.get(HEADER)
    if key:
        return key
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def key_is_valid(key: str | None, digests: tuple[bytes, ...]) -> bool:
    """Whether ``key`` is one of the configured keys (constant time; see the module doc)."""
    if key is None:
        return False
    given = digest(key.encode("utf-8", "surrogateescape"))
    matched = False
    for expected in digests:
        matched |= hmac.compare_digest(given, expected)
    return matched
