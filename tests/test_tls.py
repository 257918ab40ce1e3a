"""HTTPS to an Alteryx Server whose certificate comes from a private CA, as on-premises servers
often have: refused by default, trusted with ALTERYX_CA_BUNDLE (for Alteryx only) or through
SSL_CERT_FILE (the whole process), and a bad bundle is an error naming the file."""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    d = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Acme Private Root CA"))
        .issuer_name(_name("Acme Private Root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("alteryx.acme.internal"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (d / "not-a-cert.pem").write_text("this is not PEM\n")
    return d


@pytest.fixture(scope="module")
def https_gallery(pki):
    """A Gallery that answers the workflow list over HTTPS (signatures are not this test's subject)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = json.dumps([{"id": "wf-tls", "metaInfo": {"name": "Over TLS"}}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/gallery/api/"
    server.shutdown()


def list_workflows(router_bin, url, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALTERYX_", "SSL_CERT_"))}
    env.update({"ALTERYX_URL": url, "ALTERYX_KEY": "k", "ALTERYX_SECRET": "s"}, **extra)
    return subprocess.run([str(router_bin), "--json", "workflows", "list"], env=env, capture_output=True, text=True, timeout=60)


def test_a_private_ca_is_refused_by_default(router_bin, https_gallery):
    out = list_workflows(router_bin, https_gallery)
    assert out.returncode != 0
    assert "UnknownIssuer" in out.stderr and "set ALTERYX_CA_BUNDLE" in out.stderr, out.stderr
    # Not retried: another attempt would meet the same certificate.
    assert "attempt=4" not in out.stderr and "retrying" not in out.stderr, out.stderr


def test_alteryx_ca_bundle_trusts_the_private_ca(router_bin, https_gallery, pki):
    out = list_workflows(router_bin, https_gallery, ALTERYX_CA_BUNDLE=str(pki / "ca.pem"))
    assert out.returncode == 0, out.stderr
    assert [w["id"] for w in json.loads(out.stdout)] == ["wf-tls"]


def test_ssl_cert_file_replaces_the_system_bundle(router_bin, https_gallery, pki):
    out = list_workflows(router_bin, https_gallery, SSL_CERT_FILE=str(pki / "ca.pem"))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("bundle, says", [("not-a-cert.pem", "holds no certificate"), ("missing.pem", "No such file")])
def test_a_bad_ca_bundle_is_an_error_naming_the_file(router_bin, https_gallery, pki, bundle, says):
    out = list_workflows(router_bin, https_gallery, ALTERYX_CA_BUNDLE=str(pki / bundle))
    assert out.returncode != 0
    assert f"ALTERYX_CA_BUNDLE {pki / bundle}" in out.stderr and says in out.stderr, out.stderr


def test_aws_clients_trust_the_same_roots(router_bin, pki):
    """The AWS SDK's HTTPS client (built in src/tls.rs from the shared roots) speaks TLS to an
    endpoint SSL_CERT_FILE vouches for, and ALTERYX_CA_BUNDLE, meant for Alteryx alone, does not
    leak into it."""
    import socket
    import time

    from conftest import ROOT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = subprocess.Popen([str(ROOT / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port), "-s",
                             "-c", str(pki / "server.pem"), "-k", str(pki / "server.key")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ALTERYX_", "SSL_CERT_", "AWS_ENDPOINT"))}
        base.update({"AWS_ENDPOINT_URL": f"https://127.0.0.1:{port}", "RULES_TABLE": "tls-rules", "EXECUTIONS_TABLE": "tls-executions",
                     "AWS_MAX_ATTEMPTS": "1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"})

        def tables_create(**extra):
            return subprocess.run([str(router_bin), "tables", "create"], env={**base, **extra}, capture_output=True, text=True, timeout=120)

        refused = tables_create(ALTERYX_CA_BUNDLE=str(pki / "ca.pem"))
        assert refused.returncode != 0 and "certificate" in refused.stderr.lower(), refused.stderr
        trusted = tables_create(SSL_CERT_FILE=str(pki / "ca.pem"))
        assert trusted.returncode == 0, trusted.stderr
        assert "tls-rules" in trusted.stdout and "tls-executions" in trusted.stdout, trusted.stdout
    finally:
        moto.terminate()
        moto.wait(10)
