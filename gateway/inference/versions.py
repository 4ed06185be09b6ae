"""Item-detector versions in the model repository: which exist, which is live, promotion.

Each version is a folder ``item_detector/<N>/`` (``model.py``, ``model.onnx``, ``meta.json``
with its threshold and the figures it was measured with, ``weights.pt`` to fine-tune from).
The live version is the one named by config.pbtxt's version policy (``specific``), so that a
restarted Triton serves the same one and a candidate written by ``train --from-store`` is never
served before someone promotes it. Every change of the live version is appended to
``promotions.jsonl`` (from, to, who, when): the model's history, and what rollback follows.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DETECTOR = "item_detector"
HISTORY = "promotions.jsonl"
_POLICY = re.compile(r"^version_policy\s*:.*$\n?", re.MULTILINE)
_SPECIFIC = re.compile(r"^version_policy\s*:\s*\{\s*specific\s*:\s*\{\s*versions\s*:\s*"
                       r"\[\s*(\d+)\s*\]", re.MULTILINE)
_ANCHOR = re.compile(r"^max_batch_size\s*:.*$", re.MULTILINE)


class VersionError(Exception):
    """A version operation that cannot be done (unknown version, worse candidate, no history)."""


@dataclass(frozen=True)
class VersionInfo:
    """One version folder and what its meta.json says about it."""

    number: int
    meta: dict[str, Any]
    live: bool

    @property
    def heldout(self) -> dict[str, Any] | None:
        """The comparison written by ``train --from-store`` (None for other versions)."""
        value = self.meta.get("heldout")
        return value if isinstance(value, dict) else None


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class DetectorVersions:
    """The item detector's versions in one model repository (file operations only: the
    gateway's :class:`~gateway.inference.model_watch.LiveModelWatcher` makes Triton follow)."""

    def __init__(self, repository: Path, model: str = DETECTOR) -> None:
        self.folder = Path(repository) / model
        self.config = self.folder / "config.pbtxt"

    # -- reading ------------------------------------------------------------------------------

    def numbers(self) -> list[int]:
        """Versions that hold a model, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(int(p.name) for p in self.folder.iterdir()
                      if p.name.isdigit() and (p / "model.onnx").is_file())

    def live(self) -> int | None:
        """The version Triton is told to serve: the pinned one, else (Triton's default policy)
        the newest; None when there is no model at all."""
        try:
            match = _SPECIFIC.search(self.config.read_text(encoding="utf-8"))
        except OSError:
            match = None
        if match:
            return int(match.group(1))
        numbers = self.numbers()
        return numbers[-1] if numbers else None

    def meta(self, number: int) -> dict[str, Any]:
        """A version's meta.json (empty when it has none or it is unreadable)."""
        try:
            return dict(json.loads((self.folder / str(number) / "meta.json").read_text()))
        except (OSError, ValueError, TypeError):
            return {}

    def weights(self, number: int) -> Path | None:
        """Torch weights of a version (the shipped version keeps them beside config.pbtxt)."""
        own = self.folder / str(number) / "weights.pt"
        if own.is_file():
            return own
        shipped = self.folder / "weights.pt"
        numbers = self.numbers()
        return shipped if shipped.is_file() and numbers and number == numbers[0] else None

    def versions(self) -> list[VersionInfo]:
        """Every version with its metadata, oldest first."""
        live = self.live()
        return [VersionInfo(n, self.meta(n), n == live) for n in self.numbers()]

    def history(self) -> list[dict[str, Any]]:
        """Promotions and rollbacks, oldest first."""
        try:
            lines = (self.folder / HISTORY).read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                out.append(dict(json.loads(line)))
            except (ValueError, TypeError):
                continue  # a torn last line from a crash: skip it, keep the rest
        return out

    # -- changing -----------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two promotions at once must not interleave)."""
        with open(self.folder / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def add(self, onnx: Path, weights: Path, meta: dict[str, Any]) -> int:
        """Write a candidate as the next version (not live); returns its number. The folder is
        assembled under a dotted name and renamed, so nobody sees half a version."""
        live = self.live()
        if live is None:
            raise VersionError(f"{self.folder}: no version to take model.py from")
        with self._locked():
            number = max(self.numbers(), default=0) + 1
            scratch = Path(tempfile.mkdtemp(prefix=".candidate-", dir=self.folder))
            try:
                shutil.copy2(self.folder / str(live) / "model.py", scratch / "model.py")
                shutil.copyfile(onnx, scratch / "model.onnx")
                shutil.copyfile(weights, scratch / "weights.pt")
                (scratch / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True)
                                                   + "\n")
                scratch.chmod(0o755)
                scratch.rename(self.folder / str(number))
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
        return number

    def promote(self, number: int, *, force: bool = False, by: str = "") -> int:
        """Make ``number`` live; refused when it measured worse than the live model on the
        held-out slice (or was never compared with it) unless ``force``. Returns the old one."""
        with self._locked():
            live = self._require(number)
            if number == live:
                raise VersionError(f"version {number} is already live")
            if not force:
                _check_better(VersionInfo(number, self.meta(number), False), live)
            self._set_live(number, live, "promote", by)
        return live

    def rollback(self, *, by: str = "") -> tuple[int, int]:
        """Go back to the version that was live before the current one: (from, to). Replays
        the history as a stack (a promotion pushes, a rollback pops), so rolling back twice
        goes back two promotions rather than undoing the first rollback."""
        with self._locked():
            live = self.live()
            stack: list[int] = []
            for entry in self.history():
                if entry.get("action") == "rollback":
                    del stack[-1:]
                elif isinstance(entry.get("to"), int):
                    if not stack and isinstance(entry.get("from"), int):
                        stack.append(int(entry["from"]))
                    stack.append(int(entry["to"]))
            if len(stack) < 2 or stack[-1] != live or stack[-2] not in self.numbers():
                raise VersionError(f"nothing to roll back to: version {live} was not promoted "
                                   "over another one here")
            self._set_live(stack[-2], live, "rollback", by)
            return int(live), stack[-2]

    def _require(self, number: int) -> int | None:
        if number not in self.numbers():
            known = ", ".join(map(str, self.numbers())) or "none"
            raise VersionError(f"no version {number} in {self.folder} (versions: {known})")
        return self.live()

    def _set_live(self, number: int, previous: int | None, action: str, by: str) -> None:
        text = self.config.read_text(encoding="utf-8")
        text = _POLICY.sub("", text)
        policy = f"version_policy: {{ specific: {{ versions: [ {number} ] }} }}"
        anchor = _ANCHOR.search(text)
        if anchor is None:
            raise VersionError(f"{self.config} has no max_batch_size line")
        text = text[: anchor.end()] + "\n" + policy + text[anchor.end():]
        _atomic_write(self.config, text)
        entry = {"action": action, "from": previous, "to": number, "by": by,
                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(self.folder / HISTORY, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def better(candidate: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether a candidate's held-out figures are at least as good as the current model's:
    more photos counted right, or as many with a smaller mean absolute error."""
    c_right, o_right = float(candidate["right"]), float(current["right"])
    if c_right != o_right:
        return c_right > o_right
    return float(candidate["mae"]) <= float(current["mae"])


def _check_better(info: VersionInfo, live: int | None) -> None:
    held = info.heldout
    if held is None:
        raise VersionError(f"version {info.number} was never compared with the live model "
                           "(use --force to promote it anyway)")
    if held.get("current_version") != live:
        raise VersionError(f"version {info.number} was compared with version "
                           f"{held.get('current_version')}, but version {live} is live now "
                           "(train again, or use --force)")
    if not better(held["candidate"], held["current"]):
        raise VersionError(
            f"version {info.number} is worse than live version {live} on the held-out slice "
            f"(counted right {held['candidate']['right']:.1%} vs "
            f"{held['current']['right']:.1%}); use --force to promote it anyway")
