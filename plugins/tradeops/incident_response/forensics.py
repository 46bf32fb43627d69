"""A security incident's forensic bundle: one ``.tar.gz`` of the evidence whose ``manifest.json`` holds each other
member's SHA-256, beside it the archive's own SHA-256 (a ``sha256sum -c`` file). Both are written once and never
replaced: created with ``O_EXCL`` (an existing file is never opened for writing), then made read-only (``0o444``);
another bundle of the same incident takes the next number. :func:`verify` recomputes every checksum."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

FOLDER = "forensics"
MANIFEST = "manifest.json"
READ_ONLY = 0o444
NUMBERED = re.compile(r"^evidence-(\d{3,})\.tar\.gz$")


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: the archive's SHA-256 as read now, and every mismatch (none: intact)."""

    path: Path
    sha256: str | None
    members: dict[str, str] = field(default_factory=dict)  # name: its SHA-256, as the manifest lists it
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def folder(reports: Path, incident_id: int) -> Path:
    """Where an incident's bundles are: ``<reports>/forensics/incident-<id>/``."""
    return reports / FOLDER / f"incident-{incident_id}"


def checksum_file(archive: Path) -> Path:
    return archive.with_name(archive.name + ".sha256")


def bundles(directory: Path) -> list[Path]:
    """The bundles in ``directory``, oldest (lowest number) first."""
    if not directory.is_dir():
        return []
    found = [(int(m[1]), p) for p in directory.iterdir() if (m := NUMBERED.match(p.name))]
    return [path for _, path in sorted(found)]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create_once(path: Path, data: bytes) -> None:
    """Write a new file, read-only once written; :class:`FileExistsError` if ``path`` exists (never replaced)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.fchmod(fd, READ_ONLY)
    finally:
        os.close(fd)


def archive_bytes(files: dict[str, bytes], meta: dict[str, Any]) -> bytes:
    """The ``.tar.gz`` of ``files`` and, last, the manifest: ``meta`` and each file's size and SHA-256."""
    members = [{"name": name, "bytes": len(data), "sha256": sha256_hex(data)} for name, data in files.items()]
    manifest = json.dumps({**meta, "members": members}, indent=2, default=str).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in {**files, MANIFEST: manifest}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), READ_ONLY
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write(directory: Path, files: dict[str, bytes], meta: dict[str, Any]) -> Verification:
    """Write ``files`` as the incident's next bundle (``evidence-001.tar.gz``, ``-002``, ...) and its checksum file;
    never over an existing one. Returns the new bundle, verified as read back from disk."""
    if MANIFEST in files:
        raise ValueError(f"{MANIFEST} is the bundle's own")
    directory.mkdir(parents=True, exist_ok=True)
    data = archive_bytes(files, meta)
    existing = bundles(directory)
    number = int(NUMBERED.match(existing[-1].name)[1]) + 1 if existing else 1  # type: ignore[index]
    while True:
        path = directory / f"evidence-{number:03d}.tar.gz"
        try:
            create_once(path, data)
            break
        except FileExistsError:  # another writer took this number
            number += 1
    create_once(checksum_file(path), f"{sha256_hex(data)}  {path.name}\n".encode())
    return verify(path, sha256_hex(data))


def verify(path: Path, expected: str | None = None) -> Verification:
    """Recompute the archive's SHA-256 (against its checksum file, and ``expected`` when given, e.g. the one on the
    incident) and every member's (against the manifest); a member missing, added or changed is a problem."""
    problems: list[str] = []
    try:
        data = path.read_bytes()
    except OSError as err:
        return Verification(path, None, problems=[f"unreadable: {err}"])
    actual = sha256_hex(data)
    try:
        recorded = checksum_file(path).read_text().split()[0]
    except (OSError, IndexError):
        recorded = None
        problems.append(f"no checksum file {checksum_file(path).name}")
    for source, wanted in (("the checksum file's", recorded), ("the expected", expected)):
        if wanted is not None and wanted != actual:
            problems.append(f"archive SHA-256 {actual} is not {source} {wanted}")
    listed: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            contents = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
        listed = {m["name"]: m["sha256"] for m in json.loads(contents.pop(MANIFEST))["members"]}
    except (tarfile.TarError, OSError, EOFError, KeyError, ValueError) as err:
        problems.append(f"unreadable archive or manifest: {type(err).__name__}: {err}")
        return Verification(path, actual, listed, problems)
    for name in sorted(listed.keys() - contents.keys()):
        problems.append(f"{name}: listed in the manifest, missing from the archive")
    for name in sorted(contents.keys() - listed.keys()):
        problems.append(f"{name}: in the archive, not in the manifest")
    for name in sorted(listed.keys() & contents.keys()):
        if sha256_hex(contents[name]) != listed[name]:
            problems.append(f"{name}: SHA-256 {sha256_hex(contents[name])} is not the manifest's {listed[name]}")
    return Verification(path, actual, listed, problems)


def verify_listed(path: Path, listed: Mapping[str, Any]) -> Verification:
    """:func:`verify` ``path`` against the bundle the incident lists (``details.forensic_bundle``): its SHA-256 when
    it is that bundle, the one record the files' writer cannot rewrite; a bundle other than the listed one (written
    by something else, or by a run that died before listing it) is a problem. Nothing listed: the files alone."""
    if not listed.get("bundle"):
        return verify(path)
    if Path(str(listed["bundle"])).name != path.name:
        found = verify(path)
        return replace(found, problems=[*found.problems, f"not the bundle listed on the incident ({listed['bundle']})"])
    return verify(path, str(listed["sha256"]))
