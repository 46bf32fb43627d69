"""The security runbook's pure decisions and its forensic bundle's files: who is paged (the config's security
targets), which gateway lines are auth failures, a token selector is literal and "all" only when said, the plan in
the runbook's order; a bundle verifies, a tampered member or archive does not, the files are read-only and never
replaced (another bundle takes the next number)."""

from __future__ import annotations

import io
import json
import stat
import tarfile

import pytest

from tradeops.incident_response import forensics
from tradeops.incident_response.evidence import (
    auth_failures,
    page_text,
    render,
    security_plan,
    security_targets,
    token_selector,
)


def members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def tar_gz(contents: dict[str, bytes]) -> bytes:
    """An archive of ``contents`` as someone rebuilding it by hand would write it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


FILES = {"logs/api-gateway/pod-1/gateway.log": b"line 1\nline 2\n", "incident/incident.json": b'{"id": 7}'}


def test_the_security_page_goes_to_the_configs_security_channel_and_first_targets(config):
    channels, mentions = security_targets(config)
    first = config.escalation.severities["security"].first_targets
    assert channels[0] == config.slack.channels["security"] == "#security-incidents"
    assert set(channels) == {config.slack.channels["security"], *(t for t in first if t.startswith("#"))}
    assert len(channels) == len(set(channels)), "each channel once"
    assert mentions == ["@security-team"]
    text = page_text("[security] #7 breach", {"bundle": "/r/evidence-001.tar.gz", "sha256": "ab" * 32}, mentions, "r1")
    assert "@security-team" in text and "#7 breach" in text and "/r/evidence-001.tar.gz" in text and "ab" * 32 in text
    assert "Containment follows" in text
    assert "No forensic bundle" in page_text("[security] #7 breach", None, mentions, "r1")
    assert "Dry run" in page_text("[security] #7 breach", None, mentions, "r1", dry_run=True)


def test_auth_failures_are_the_gateways_401_and_403_access_lines():
    log = "\n".join(
        [
            "2026-12-01T10:00:00Z INFO access method=POST path=/v1/orders status=401 client=198.51.100.4",
            "2026-12-01T10:00:01Z INFO access method=GET path=/v1/positions status=200 latency_ms=3",
            "2026-12-01T10:00:02Z INFO access method=POST path=/v1/orders status=403 client=198.51.100.7",
            "2026-12-01T10:00:03Z INFO gateway heartbeat status=401",
        ]
    )
    kept = auth_failures(log).splitlines()
    assert [line.split(" status=")[1][:3] for line in kept] == ["401", "403"]


def test_a_token_selector_is_literal_and_all_only_when_asked():
    assert token_selector(scope="trading", user=None, everything=False) == {"scope": "trading"}
    assert token_selector(scope="trading", user="bob", everything=False) == {"scope": "trading", "user": "bob"}
    assert token_selector(scope=None, user=None, everything=True) == {"all": True}
    refused = [(None, None, False), ("trading", None, True), ("trad*", None, False), ("", None, False)]
    for scope, user, everything in refused:
        with pytest.raises(ValueError):
            token_selector(scope=scope, user=user, everything=everything)


def test_the_plan_is_in_the_runbooks_order_and_leaves_out_what_is_done():
    plan = security_plan(
        evidence=["api-gateway", "execution-engine"],
        channels=["#security-incidents"],
        gateway="api-gateway",
        gateway_type="LoadBalancer",
        replicas={"execution-engine": 2, "data-handler": 0},
        selector={"scope": "trading"},
        tokens=[{"id": "tok_1"}, {"id": "tok_2"}],
    )
    assert [step["action"] for step in plan] == ["preserve", "page", "isolate", "scale", "revoke"]
    assert plan[3] == {"action": "scale", "target": "execution-engine", "before": 2, "after": 0}
    assert plan[4]["ids"] == ["tok_1", "tok_2"] and plan[4]["before"] == 2
    text = render(plan)
    assert text.splitlines()[2] == "• isolate Service api-gateway: LoadBalancer → ClusterIP"
    assert "revoke 2 active token(s) (scope trading)" in text
    done = security_plan(
        evidence=["api-gateway"],
        channels=["#security-incidents"],
        gateway="api-gateway",
        gateway_type="ClusterIP",
        replicas={"execution-engine": 0},
        selector={"all": True},
        tokens=[],
    )
    assert [step["action"] for step in done] == ["preserve", "page", "revoke"]
    assert "revoke 0 active token(s) (every token)" in render(done)


def test_a_bundle_verifies_and_lists_every_members_checksum(tmp_path):
    written = forensics.write(tmp_path, FILES, {"incident_id": 7})
    assert written.ok and written.path.name == "evidence-001.tar.gz"
    assert set(written.members) == set(FILES)
    sidecar = forensics.checksum_file(written.path).read_text()
    assert sidecar == f"{written.sha256}  evidence-001.tar.gz\n", "sha256sum -c reads it"
    assert forensics.verify(written.path, written.sha256).ok
    with tarfile.open(written.path) as tar:
        manifest = json.loads(tar.extractfile(forensics.MANIFEST).read())  # type: ignore[union-attr]
    assert manifest["incident_id"] == 7
    assert {m["name"]: m["bytes"] for m in manifest["members"]} == {k: len(v) for k, v in FILES.items()}


def test_the_files_are_read_only_and_a_second_bundle_takes_the_next_number(tmp_path):
    first = forensics.write(tmp_path, FILES, {"incident_id": 7})
    before = first.path.read_bytes()
    for path in (first.path, forensics.checksum_file(first.path)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
    with pytest.raises(FileExistsError):
        forensics.create_once(first.path, b"replaced")
    second = forensics.write(tmp_path, {**FILES, "incident/trail.json": b"[]"}, {"incident_id": 7})
    assert second.path.name == "evidence-002.tar.gz" and second.ok
    assert first.path.read_bytes() == before, "never replaced"
    assert forensics.bundles(tmp_path) == [first.path, second.path]


def test_a_tampered_archive_fails_verification(tmp_path):
    written = forensics.write(tmp_path, FILES, {"incident_id": 7})
    written.path.chmod(0o644)
    written.path.write_bytes(written.path.read_bytes() + b"\0")
    checked = forensics.verify(written.path, written.sha256)
    assert not checked.ok
    assert any("checksum file" in p for p in checked.problems) and any("expected" in p for p in checked.problems)


def test_a_tampered_member_fails_verification_even_with_a_matching_archive_checksum(tmp_path):
    written = forensics.write(tmp_path, FILES, {"incident_id": 7})
    contents = members(written.path)
    contents["logs/api-gateway/pod-1/gateway.log"] = b"line 1\n"  # a line removed, the manifest kept
    data = tar_gz(contents)
    sidecar = forensics.checksum_file(written.path)
    for path in (written.path, sidecar):
        path.chmod(0o644)
    written.path.write_bytes(data)
    sidecar.write_text(f"{forensics.sha256_hex(data)}  {written.path.name}\n")  # redone to match

    checked = forensics.verify(written.path)
    assert checked.problems == [
        f"logs/api-gateway/pod-1/gateway.log: SHA-256 {forensics.sha256_hex(b'line 1' + bytes([10]))} is not the "
        f"manifest's {written.members['logs/api-gateway/pod-1/gateway.log']}"
    ]
    assert not forensics.verify(written.path, written.sha256).ok, "nor against the checksum on the incident"


def test_a_member_added_or_missing_fails_verification(tmp_path):
    written = forensics.write(tmp_path, FILES, {"incident_id": 7})
    contents = members(written.path)
    del contents["incident/incident.json"]
    contents["extra.txt"] = b"x"
    data = tar_gz(contents)
    written.path.chmod(0o644)
    written.path.write_bytes(data)
    problems = forensics.verify(written.path).problems
    assert "incident/incident.json: listed in the manifest, missing from the archive" in problems
    assert "extra.txt: in the archive, not in the manifest" in problems


def test_a_bundle_rewritten_whole_verifies_alone_but_not_against_the_incident_s_listing(tmp_path):
    written = forensics.write(tmp_path, FILES, {"incident_id": 7})
    listed = {"bundle": str(written.path), "sha256": written.sha256, "by": "alice"}
    assert forensics.verify_listed(written.path, listed).ok

    forged = forensics.archive_bytes({**FILES, "logs/api-gateway/pod-1/gateway.log": b"nothing to see\n"}, {})
    sidecar = forensics.checksum_file(written.path)
    for path in (written.path, sidecar):
        path.chmod(0o644)
    written.path.write_bytes(forged)  # archive, manifest and checksum file all redone to agree
    sidecar.write_text(f"{forensics.sha256_hex(forged)}  {written.path.name}\n")

    assert forensics.verify(written.path).ok, "the files alone cannot tell"
    checked = forensics.verify_listed(written.path, listed)
    assert checked.problems == [f"archive SHA-256 {forensics.sha256_hex(forged)} is not the expected {written.sha256}"]


def test_a_bundle_the_incident_does_not_list_is_not_taken_as_its_evidence(tmp_path):
    first = forensics.write(tmp_path, FILES, {"incident_id": 7})
    second = forensics.write(tmp_path, FILES, {"incident_id": 7})  # e.g. a run that died before listing it
    listed = {"bundle": str(first.path), "sha256": first.sha256}
    assert forensics.verify_listed(second.path, listed).problems == [
        f"not the bundle listed on the incident ({first.path})"
    ]
    assert forensics.verify_listed(second.path, {}).ok, "nothing listed yet: the files alone"
