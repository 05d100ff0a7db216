"""vibewatch.access: Mosquitto's password hashes, the password file, secrets and the ACL."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from vibewatch.access import (
    AccessFiles,
    CertificateAuthority,
    acl_text,
    hash_password,
    verify_password,
)
from vibewatch.cli import app
from vibewatch.errors import ConfigError, DataError
from vibewatch.protocol import DEFAULT_PREFIX, Kind

#: Written by mosquitto_passwd 2.0.11 for the password "secretpw".
MOSQUITTO_LINE = (
    "$7$101$D8jG49Z/df//Iska$EbWz/Pr9axPbZbYlDaH7JTkT39arjk3pW0iuHviFRxj4h0/oCYAr9L+YU8U7Icyk"
    "0mxw4WsI2qcc+oi+NoqryQ=="
)


def test_hashes_are_mosquitto_passwd_hashes() -> None:
    assert verify_password("secretpw", MOSQUITTO_LINE)
    assert not verify_password("secretpW", MOSQUITTO_LINE)
    salt = base64.b64decode("D8jG49Z/df//Iska")
    assert hash_password("secretpw", salt=salt) == MOSQUITTO_LINE
    fresh = hash_password("x")
    assert (
        fresh.startswith("$7$101$") and verify_password("x", fresh) and fresh != hash_password("x")
    )
    assert not verify_password("x", "$6$not-ours")


def test_the_acl_confines_devices_to_their_topics_and_opens_the_prefix_to_services() -> None:
    text = acl_text("site/v1/", ["svc.ingest"])
    assert "user svc.ingest\ntopic readwrite site/v1/#\n" in text
    for kind in Kind:
        access = "write" if kind.uplink else "read"
        assert f"pattern {access} site/v1/%u/{kind.suffix}\n" in text
    assert "readwrite site/v1/%u" not in text and "pattern read site/v1/%u/telemetry" not in text


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provision_writes_private_secrets_and_keeps_them_unless_renewed(tmp_path: Path) -> None:
    files = AccessFiles(tmp_path / "b", DEFAULT_PREFIX)
    made = files.provision(["pump-1", "svc.ingest", "pump-1"])
    assert [(c.user, c.created) for c in made] == [("pump-1", True), ("svc.ingest", True)]
    device, service = (c.password_file for c in made)
    assert device == tmp_path / "b" / "devices" / "pump-1.password"
    assert service == tmp_path / "b" / "services" / "svc.ingest.password"
    assert {mode(p) for p in (device, service, files.passwd, files.acl)} == {0o600}
    lines = dict(line.split(":", 1) for line in files.passwd.read_text().splitlines())
    assert verify_password(device.read_text().strip(), lines["pump-1"])
    assert "user svc.ingest" in files.acl.read_text()
    first = device.read_text()
    assert [c.created for c in files.provision(["pump-1", "pump-2"])] == [False, True]
    assert device.read_text() == first and files.users() == ["pump-1", "pump-2", "svc.ingest"]
    files.provision(["pump-1"], renew=True)
    assert device.read_text() != first


@pytest.mark.parametrize("name", ["pump 1", "pump/1", "+", "a:b", "x" * 65, "Svc.Ingest", ""])
def test_provision_refuses_names_that_are_neither_devices_nor_services(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(DataError, match="neither a device id nor a service name"):
        AccessFiles(tmp_path, DEFAULT_PREFIX).provision([name])
    assert not (tmp_path / "passwd").exists()


def test_revoke_removes_the_user_and_its_secret(tmp_path: Path) -> None:
    files = AccessFiles(tmp_path, DEFAULT_PREFIX)
    files.provision(["pump-1", "pump-2"])
    assert files.revoke(["pump-2"]) == ["pump-2"]
    assert files.users() == ["pump-1"]
    assert not (tmp_path / "devices" / "pump-2.password").exists()
    with pytest.raises(DataError, match="not provisioned: pump-2, pump-9"):
        files.revoke(["pump-2", "pump-9"])


def test_a_damaged_password_file_is_refused_with_its_line(tmp_path: Path) -> None:
    files = AccessFiles(tmp_path, DEFAULT_PREFIX)
    files.provision(["pump-1"])
    files.passwd.write_text(files.passwd.read_text() + "pump-2:plaintext\n")
    with pytest.raises(ConfigError, match=r"passwd:2: not a user:\$7\$ hash line"):
        files.provision(["pump-3"])


def test_provision_command_never_prints_a_password(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["devices", "provision", "pump-1", "svc.ota", "--dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert [u["user"] for u in answer["users"]] == ["pump-1", "svc.ota"]
    for user in answer["users"]:
        secret = Path(user["password_file"]).read_text().strip()
        assert len(secret) >= 32 and secret not in result.output
    result = runner.invoke(app, ["devices", "provision", "pump 1", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "'pump 1' is neither a device id" in result.output
    result = runner.invoke(app, ["devices", "revoke", "pump-7", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "not provisioned: pump-7" in result.output


def test_the_ca_is_made_once_and_signs_server_and_client_certificates(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    server = ca.issue("broker.example", hosts=["broker.example", "10.0.0.5"])
    first_ca = ca.certificate.read_bytes()
    client = ca.issue("pump-1")
    assert ca.certificate.read_bytes() == first_ca  # made once, kept
    assert mode(ca.key) == 0o600 and mode(server.key) == 0o600 and mode(client.key) == 0o600
    root = x509.load_pem_x509_certificate(first_ca)
    for issued, usage in (
        (server, ExtendedKeyUsageOID.SERVER_AUTH),
        (client, ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        cert = x509.load_pem_x509_certificate(issued.certificate.read_bytes())
        cert.verify_directly_issued_by(root)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == issued.name
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
    names = x509.load_pem_x509_certificate(server.certificate.read_bytes()).extensions
    san = names.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert client.certificate == tmp_path / "devices" / "pump-1.crt"


def test_the_ca_refuses_a_host_that_is_no_name_nor_address(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="broker host 'bad host!' is neither"):
        CertificateAuthority(tmp_path).issue("b", hosts=["bad host!"])
