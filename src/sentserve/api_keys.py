"""API keys: `name:sha256-hex-of-key[:rate limit]` lines, so no plaintext key rests on disk.

The file is re-read when it changes (checked at most once a second), so a revoked key stops
working without a restart. Keys from `SENTSERVE_API_KEYS` are hashed in memory the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


class KeyFileError(ValueError):
    """A keys file line that cannot be used; the message names the line."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes
    rate_limit: str | None = None


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_keys_file(path: Path) -> list[ApiKey]:
    keys = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        hex_digest, _, rate_limit = rest.partition(":")
        if not _NAME.match(name) or not _HASH.match(hex_digest):
            raise KeyFileError(f"{path}:{number}: expected name:sha256-hex[:rate limit]")
        if rate_limit and not valid_rate_limit(rate_limit):
            raise KeyFileError(f"{path}:{number}: rate limit {rate_limit!r} is not like 100/minute")
        keys.append(ApiKey(name, bytes.fromhex(hex_digest), rate_limit or None))
    return keys


def valid_rate_limit(text: str) -> bool:
    """A limit in the `limits` notation: 100/minute, or several joined by ';'."""
    from limits import parse_many

    try:
        parse_many(text)
    except ValueError:
        return False
    return True


class KeyStore:
    """Which key a request carries, if any; compared in constant time against every key."""

    def __init__(self, path: Path | None = None, plain_keys: list[str] | None = None) -> None:
        self.path = path
        self._plain = [ApiKey(f"key-{i}", digest_of(k)) for i, k in enumerate(plain_keys or [], 1)]
        self._from_file: list[ApiKey] = []
        self._version: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        """Re-read the file when it changed (any of inode, size, mtime: a same-second edit or
        an atomic replace counts). Raises KeyFileError or OSError for a file that cannot serve."""
        if self.path is None:
            return
        stat = self.path.stat()
        version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if version != self._version:
            self._from_file = parse_keys_file(self.path)
            self._version = version

    def _fresh(self) -> list[ApiKey]:
        now = time.monotonic()
        if self.path is not None and now - self._checked >= 1.0:
            with self._lock:
                self._checked = now
                try:
                    self._reload()
                except (OSError, KeyFileError) as exc:
                    # Keep the keys last read: a broken edit must not lock every client out.
                    log.error("keys file not reloaded, keeping the previous keys: %s", exc)
        return self._plain + self._from_file

    def identify(self, key: str) -> ApiKey | None:
        """The key's entry, or None. Every stored digest is compared, so the time taken does not
        tell which key (or how much of one) matched."""
        digest = digest_of(key)
        found = None
        for entry in self._fresh():
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        return found


def add_key(path: Path, name: str, rate_limit: str | None = None) -> str:
    """Append a new random key's hash to the file (created 0600) and return the key itself,
    which is never stored: the caller shows it once."""
    if not _NAME.match(name):
        raise KeyFileError("a key name is 1-64 letters, digits, '.', '_' or '-'")
    if rate_limit is not None and not valid_rate_limit(rate_limit):
        raise KeyFileError(f"rate limit {rate_limit!r} is not like 100/minute;5/second")
    if path.exists() and any(k.name == name for k in parse_keys_file(path)):
        raise KeyFileError(f"a key named {name} already exists in {path}")
    key = secrets.token_urlsafe(32)
    line = f"{name}:{digest_of(key).hex()}" + (f":{rate_limit}" if rate_limit else "") + "\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as file:
        file.write(line)
    return key


def revoke_key(path: Path, name: str) -> bool:
    """Remove every line of `name`; True when one was there. The file is replaced atomically,
    so a server reloading meanwhile reads the old keys or the new ones, never a half file."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.partition(":")[0].strip() != name]
    replacement = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(replacement, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write("".join(kept))
    os.replace(replacement, path)
    return len(kept) != len(lines)
