"""Fetching missing data files from their official sources, verified by sha256."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from trustlab.core.exceptions import DataIntegrityError, DataNotFoundError
from trustlab.core.files import atomic_write_bytes, sha256_bytes
from trustlab.data.paths import offline

TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: its name in the data set's folder, where to get it, and the
    sha256 digests we accept (the official file's, and the reference copy's where it differs)."""

    name: str
    urls: tuple[str, ...]
    sha256: tuple[str, ...]

    def verified(self, digest: str) -> bool:
        return digest in self.sha256


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "trustlab"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (https only)
        return response.read()


def ensure_files(folder: Path, files: tuple[RemoteFile, ...], *, where: str) -> list[Path]:
    """Return the paths of ``files`` in ``folder``, downloading missing ones when possible.

    Raises DataNotFoundError naming every missing file and the folder to put it in when the
    network is switched off or unreachable, and DataIntegrityError when a download's sha256 is
    not one we know.
    """
    missing = [f for f in files if not (folder / f.name).is_file()]
    unreachable: list[str] = []
    if missing and not offline():
        for remote in missing:
            if not _download(remote, folder / remote.name):
                unreachable.append(remote.name)
    elif missing:
        unreachable = [f.name for f in missing]
    if unreachable:
        reason = "downloads are off (TRUSTLAB_OFFLINE)" if offline() else "the network is unreachable"
        raise DataNotFoundError(
            f"missing data files {', '.join(unreachable)} in {folder} ({where}) and {reason}; "
            f"put them there, or pass --data-dir / set TRUSTLAB_DATA to a folder that has them"
        )
    return [folder / f.name for f in files]


def _download(remote: RemoteFile, dest: Path) -> bool:
    """Try each URL; True once a verified copy is written, False if none could be reached."""
    for url in remote.urls:
        try:
            data = _fetch(url)
        except (urllib.error.URLError, TimeoutError, OSError):
            continue
        digest = sha256_bytes(data)
        if not remote.verified(digest):
            raise DataIntegrityError(
                f"download of {remote.name} from {url} has sha256 {digest}, expected one of "
                f"{', '.join(remote.sha256)}; refusing to use it"
            )
        atomic_write_bytes(dest, data)
        return True
    return False
