"""Data asset certificates (sandbox/certificates.py): issued at registration, verified offline with
the public key alone; any altered field, another key, or an altered data snapshot fails; every
re-registration issues a new version chained to the previous one; sizes are never exact counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sandbox import certificates
from sandbox.audit.checkpoints import Signer
from sandbox.catalog import Catalog
from sandbox.policy import load_policy
from tests.conftest import POLICIES
from tests.support.live import REPO

SANDBOX = Path(__import__("sys").executable).parent / "sandbox"


@pytest.fixture()
def registered(tmp_path) -> tuple[Catalog, dict, str]:
    catalog = Catalog(tmp_path)
    catalog.register(load_policy(POLICIES / "pums_pid.yaml"), POLICIES / "pums_pid.yaml")
    [certificate] = certificates.versions(tmp_path, "pums_pid")
    return catalog, certificate, Signer.load(tmp_path).public_pem


def test_a_certificate_verifies_offline_with_the_public_key_and_the_data_file(registered) -> None:
    catalog, certificate, pem = registered
    dataset = catalog.get("pums_pid")
    assert certificates.verify(certificate, pem, snapshot=dataset.parquet_path) == []
    assert certificate["version"] == 1 and certificate["previous"] == "0" * 64
    assert certificate["owner"] == dataset.policy.owner and certificate["dataset"] == "pums_pid"
    assert dataset.describe()["certificate"] == certificate  # the catalog shows it


@pytest.mark.parametrize("field", [f for f in certificates.FIELDS])
def test_altering_any_field_fails(registered, field) -> None:
    _, certificate, pem = registered
    altered = dict(certificate)
    value = altered[field]
    altered[field] = (value + 1) if isinstance(value, int) else (
        "tampered" if value is None else ("0" + value[1:] if value[:1] != "0" else "1" + value[1:]))
    assert certificates.verify(altered, pem) != [], field


def test_altering_the_snapshot_or_the_key_fails(registered, tmp_path) -> None:
    catalog, certificate, pem = registered
    copy = tmp_path / "copy.parquet"
    shutil.copyfile(catalog.get("pums_pid").parquet_path, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    assert any("not the registered snapshot" in p for p in certificates.verify(certificate, pem, snapshot=copy))
    other = Signer.load_or_create(tmp_path / "elsewhere").public_pem
    assert any("not by the key given" in p for p in certificates.verify(certificate, other))
    forged = dict(certificate, signature="00" * 64)
    assert any("signature does not verify" in p for p in certificates.verify(forged, pem))


def test_a_reregistration_issues_a_new_version_chained_to_the_last(registered) -> None:
    catalog, first, pem = registered
    policy = load_policy(POLICIES / "pums_pid.yaml")
    catalog.register(policy, POLICIES / "pums_pid.yaml")  # unchanged: nothing new
    assert len(certificates.versions(catalog.data_dir, "pums_pid")) == 1
    catalog.register(policy.model_copy(update={"description": "re-registered"}), POLICIES / "pums_pid.yaml")
    first_again, second = certificates.versions(catalog.data_dir, "pums_pid")
    assert first_again == first  # versions are kept
    assert second["version"] == 2 and second["previous"] == certificates.digest(first)
    assert second["policy_sha256"] != first["policy_sha256"]
    assert certificates.verify(second, pem, previous=first) == []
    assert certificates.chain(catalog.data_dir, "pums_pid", pem) == []
    assert certificates.verify(second, pem, previous=dict(first, version=5)) != []


def test_sizes_are_never_exact_counts_of_private_data(registered, demo_catalog) -> None:
    catalog, certificate, _ = registered
    dataset = catalog.get("pums_pid")
    assert certificate["rows"] == dataset.size_bound and certificate["rows"] & (certificate["rows"] - 1) == 0
    histogram = dataset.metadata["rows_per_unit"]["units"]
    assert certificate["units"] == certificates._two_digits(sum(histogram))  # the released noisy counts
    assert len(str(certificate["units"]).rstrip("0")) <= 2
    public = certificates.latest(demo_catalog.data_dir, "district_reference")
    assert public["rows"] == 6 and public["units"] is None  # public data: exact


def test_the_command_verifies_a_file_offline(registered, tmp_path) -> None:
    import subprocess

    catalog, certificate, pem = registered
    (tmp_path / "cert.json").write_text(json.dumps(certificate))
    (tmp_path / "key.pem").write_text(pem)
    data = catalog.get("pums_pid").parquet_path

    def run(path: Path):
        return subprocess.run([str(SANDBOX), "catalog", "verify-certificate", str(path), "--public-key",
                               str(tmp_path / "key.pem"), "--data", str(data)], capture_output=True, text=True,
                              timeout=60, cwd=REPO)

    ok = run(tmp_path / "cert.json")
    assert ok.returncode == 0 and "verifies under key" in ok.stdout, ok.stderr
    (tmp_path / "bad.json").write_text(json.dumps(dict(certificate, units=(certificate["units"] or 0) + 100)))
    bad = run(tmp_path / "bad.json")
    assert bad.returncode == 1 and "signature does not verify" in bad.stderr and "Traceback" not in bad.stderr
