"""The app's own credential: a client secret or a certificate, and what happens when it is wrong."""

from __future__ import annotations

import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from support.apps import (
    CERT_CLIENT,
    JSON,
    OFFLINE_ISSUER,
    TODO_READ,
    certificate_credential,
    complete_sign_in,
    make_testapp,
    sign_in,
)
from support.environment import ini_settings, msal_env

from devprovider import make_client_certificate
from msal_wsgi import ConfigurationError, Settings

R1 = "api://r1/access"


def ini_for(issuer, **values):
    """A PasteDeploy section for the certificate client, as strings."""
    return ini_settings(issuer, CERT_CLIENT, protect=f"/todos = {TODO_READ}", **values)


def test_certificate_credential_signs_in_and_refreshes(provider):
    app = make_testapp(provider, client_id=CERT_CLIENT,
                       client_credential=certificate_credential(provider.client_certificate_path))
    mark = provider.mark()
    page = sign_in(app, provider)
    assert page.json["remote_user"] == "alice" and page.json["token"]["scopes"] == [TODO_READ]
    assert len(provider.token_requests_since(mark)) == 1  # the code, redeemed with a client assertion
    other = app.get("/todos", {"acquire": R1}).json["acquired"]
    assert other["scopes"] == [R1]
    assert len(provider.token_requests_since(mark)) == 2  # the refresh token, with the same assertion


def test_client_certificate_setting_reads_one_pem_file(provider):
    settings = Settings.from_mapping(ini_for(provider.issuer, client_certificate=str(provider.client_certificate_path)))
    assert "PRIVATE KEY" not in repr(settings)
    app = make_testapp(provider, settings=settings)
    mark = provider.mark()
    assert sign_in(app, provider).json["token"]["scopes"] == [TODO_READ]
    assert len(provider.token_requests_since(mark)) == 1


def pfx_of(pem_path, target, password):
    """The key and certificate of a PEM file as a password-protected PKCS#12 (.pfx) file."""
    data = pem_path.read_bytes()
    key, cert = serialization.load_pem_private_key(data, None), x509.load_pem_x509_certificate(data)
    target.write_bytes(pkcs12.serialize_key_and_certificates(
        b"todo-web-cert", key, cert, None, serialization.BestAvailableEncryption(password.encode())))
    return target


def test_client_certificate_setting_reads_a_password_protected_pfx(provider, tmp_path):
    pfx = pfx_of(provider.client_certificate_path, tmp_path / "client.pfx", "correct horse")
    settings = Settings.from_mapping(ini_for(provider.issuer, client_certificate=str(pfx),
                                             client_certificate_password="correct horse"))
    assert sign_in(make_testapp(provider, settings=settings), provider).json["remote_user"] == "alice"
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_mapping(ini_for(provider.issuer, client_certificate=str(pfx),
                                      client_certificate_password="wrong"))
    assert raised.value.setting == "client_certificate" and "wrong" not in str(raised.value)


def test_client_certificate_from_the_environment(tmp_path):
    pem, _ = make_client_certificate(tmp_path)
    settings = Settings.from_env(msal_env(OFFLINE_ISSUER, CERT_CLIENT, protect=None,
                                          MSAL_CLIENT_CERTIFICATE=str(pem)))
    assert settings.client_credential == certificate_credential(pem) | {"passphrase": None}


def test_a_certificate_the_provider_does_not_know_is_a_clear_503_logged_as_an_error(provider, tmp_path, caplog):
    unknown, _ = make_client_certificate(tmp_path, "not-registered")
    app = make_testapp(provider, client_id=CERT_CLIENT, client_credential=certificate_credential(unknown))
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        answer = complete_sign_in(app, provider, app.get("/todos"))
    assert answer.status_int == 503 and "Retry-After" not in answer.headers
    assert "are not set up to work together" in answer.text and "Traceback" not in answer.text
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "invalid_client" in record.getMessage() and "client_certificate" in record.getMessage()
    assert "PRIVATE KEY" not in caplog.text


def test_a_wrong_client_secret_is_the_same_clear_503(provider, caplog):
    app = make_testapp(provider, client_credential="not-the-secret")
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        answer = complete_sign_in(app, provider, app.get("/todos"))
    assert answer.status_int == 503 and "are not set up to work together" in answer.text
    assert "not-the-secret" not in caplog.text and "not-the-secret" not in answer.text


def test_an_api_caller_gets_json_when_the_credential_is_rejected_at_refresh(provider, tmp_path):
    # A user signed in; then a process serving the same sessions runs with an unregistered certificate.
    good = make_testapp(provider, client_id=CERT_CLIENT,
                        client_credential=certificate_credential(provider.client_certificate_path))
    sign_in(good, provider)
    unknown, _ = make_client_certificate(tmp_path, "rotated-too-early")
    bad = make_testapp(provider, client_id=CERT_CLIENT, client_credential=certificate_credential(unknown))
    bad.set_cookie("sid", good.cookies["sid"])
    answer = bad.get("/todos", {"acquire": R1}, headers=JSON, status=503)
    assert answer.json["error"] == "server_error" and "Retry-After" not in answer.headers


def key_of(pem_path, crt_path):
    """The private key block of a key-and-certificate PEM file."""
    return pem_path.read_text().replace(crt_path.read_text(), "")


@pytest.mark.parametrize("problem", ["damaged key", "key of another certificate", "certificate only"])
def test_a_bad_certificate_file_is_a_configuration_error(tmp_path, problem):
    first, first_crt = make_client_certificate(tmp_path, "first")
    _, second_crt = make_client_certificate(tmp_path, "second")
    path = tmp_path / "bad.pem"
    path.write_text({
        "damaged key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" + first_crt.read_text(),
        "key of another certificate": key_of(first, first_crt) + second_crt.read_text(),
        "certificate only": first_crt.read_text(),
    }[problem])
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_mapping(ini_for(OFFLINE_ISSUER, client_certificate=str(path)))
    assert raised.value.setting == "client_certificate"


# -- certificate files, read and checked at construction (no provider)

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A key-and-certificate PEM file, and the certificate alone."""
    return make_client_certificate(tmp_path_factory.mktemp("certificate"))


def encrypted_pem(pem_path, target, password):
    """The same key and certificate, the key encrypted with ``password``."""
    data = pem_path.read_bytes()
    key = serialization.load_pem_private_key(data, None)
    target.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(password.encode()))
                       + x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.PEM))
    return target


def settings_with(path, password=None):
    more = {"client_certificate_password": password} if password else {}
    return Settings.from_mapping(ini_for(OFFLINE_ISSUER, client_certificate=str(path), **more))


def test_a_pem_file_becomes_msal_s_certificate_credential(certificate):
    pem, _ = certificate
    assert dict(settings_with(pem).client_credential) == {
        "private_key": pem.read_text(), "public_certificate": pem.read_text(), "passphrase": None}


def test_a_pem_file_with_an_encrypted_key_opens_with_its_password(certificate, tmp_path):
    path = encrypted_pem(certificate[0], tmp_path / "encrypted.pem", "correct horse")
    assert settings_with(path, "correct horse").client_credential["passphrase"] == "correct horse"


def test_a_pfx_file_is_handed_to_msal_by_its_path(certificate, tmp_path):
    pfx = pfx_of(certificate[0], tmp_path / "client.pfx", "correct horse")
    assert dict(settings_with(pfx, "correct horse").client_credential) == {
        "private_key_pfx_path": str(pfx), "passphrase": "correct horse"}


def damaged(target):
    target.write_bytes(b"not a certificate file")
    return target


def pfx_without(pem_path, target, missing):
    data = pem_path.read_bytes()
    key, cert = serialization.load_pem_private_key(data, None), x509.load_pem_x509_certificate(data)
    target.write_bytes(pkcs12.serialize_key_and_certificates(
        b"partial", None if missing == "key" else key, None if missing == "certificate" else cert, None,
        serialization.NoEncryption()))
    return target


@pytest.mark.parametrize(("make", "password", "problem"), [
    (lambda pem, tmp: encrypted_pem(pem, tmp / "e.pem", "correct horse"), "wrong", "must be a PEM file"),
    (lambda pem, tmp: encrypted_pem(pem, tmp / "e.pem", "correct horse"), None, "must be a PEM file"),
    (lambda pem, tmp: pem, "not needed", "must be a PEM file"),
    (lambda pem, tmp: pfx_of(pem, tmp / "c.pfx", "correct horse"), "wrong", "must be a PKCS#12 file"),
    (lambda pem, tmp: damaged(tmp / "c.p12"), None, "must be a PKCS#12 file"),
    (lambda pem, tmp: damaged(tmp / "c.pem"), None, "must be a PEM file"),
    (lambda pem, tmp: pfx_without(pem, tmp / "k.pfx", "key"), None, "does not belong to its certificate"),
    (lambda pem, tmp: pfx_without(pem, tmp / "c.pfx", "certificate"), None, "does not belong to its certificate"),
], ids=["pem-wrong-password", "pem-no-password", "pem-password-for-a-plain-key", "pfx-wrong-password",
        "pfx-damaged", "pem-damaged", "pfx-without-key", "pfx-without-certificate"])
def test_a_certificate_that_does_not_open_says_which_kind_of_file_it_wanted(certificate, tmp_path, make, password,
                                                                            problem):
    with pytest.raises(ConfigurationError) as raised:
        settings_with(make(certificate[0], tmp_path), password)
    assert raised.value.setting == "client_certificate" and problem in raised.value.problem


def test_a_new_certificate_replaces_a_secret(certificate):
    settings = Settings.from_mapping(ini_for(OFFLINE_ISSUER, client_secret="s"))
    changed = settings.with_changes(client_certificate=str(certificate[0]))
    assert changed.client_credential["public_certificate"] == certificate[0].read_text()
