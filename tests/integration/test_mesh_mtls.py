"""mTLS mode over real gRPC: a caller is the common name of its verified certificate.

Certificates come from a CA this test makes (cryptography). The server is the outbox servicer on
a `GrpcHost` in mtls mode; its files are rewritten to rotate them while it runs.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from noetl.v1 import outbox_pb2, outbox_pb2_grpc

from kernel import db
from kernel.errors import PermissionDenied, Unavailable
from kernel.grpc_client import ClientAuth
from kernel.grpc_server import GrpcHost
from kernel.mesh_auth import MTLS, MeshAuth
from kernel.mesh_guard import ServerAuth
from kernel.migrate import migrate
from noetl_mesh import procs
from services.outbox.api import OutboxApi
from services.outbox.service import Outbox
from services.outbox.store import OutboxStore
from tests.helpers.waiting import wait_for

LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _builder(subject, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(self, directory: Path, common_name: str) -> MeshAuth:
        """A certificate for `common_name` (also valid for 127.0.0.1) with this CA as the bundle."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            _builder(subject, self.cert.subject, key.public_key())
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOCALHOST))]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "tls.crt": cert.public_bytes(serialization.Encoding.PEM),
            "tls.key": key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "ca.crt": self.cert.public_bytes(serialization.Encoding.PEM),
        }
        for name, data in files.items():
            staging = directory / f"{name}.new"
            staging.write_bytes(data)
            staging.replace(directory / name)
        return MeshAuth(
            mode=MTLS,
            identity=common_name,
            tls_cert=str(directory / "tls.crt"),
            tls_key=str(directory / "tls.key"),
            tls_ca=str(directory / "ca.crt"),
        )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )


@dataclass(frozen=True)
class Served:
    address: str
    health_address: str
    server_dir: Path
    first: Authority


@pytest.fixture(scope="module")
async def served(module_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    await migrate(module_dsn)
    root = tmp_path_factory.mktemp("mtls")
    first = Authority.make("noetl-mesh test CA 1")
    server = first.issue(root / "outbox", "outbox")
    health_port = procs.free_ports(1)[0]
    settings = MeshAuth(
        mode=MTLS,
        identity="outbox",
        tls_cert=server.tls_cert,
        tls_key=server.tls_key,
        tls_ca=server.tls_ca,
        health_listen=f"{LOCALHOST}:{health_port}",
    )
    pool = await db.create_pool(module_dsn)
    api = OutboxApi(Outbox(OutboxStore(pool, lease_seconds=60, max_attempts=3)))
    host = GrpcHost(
        "outbox",
        f"{LOCALHOST}:0",
        [lambda s: outbox_pb2_grpc.add_OutboxServiceServicer_to_server(api, s)],
        auth=ServerAuth(settings),
        grace=1.0,
    )
    port = await host.start()
    try:
        yield Served(f"{LOCALHOST}:{port}", f"{LOCALHOST}:{health_port}", root / "outbox", first)
    finally:
        await host.stop()
        await pool.close()


async def pending(auth: MeshAuth, address: str) -> outbox_pb2.PendingCountResponse:
    async with ClientAuth(auth).open(address) as channel:
        answer: outbox_pb2.PendingCountResponse = await outbox_pb2_grpc.OutboxServiceStub(
            channel
        ).PendingCount(outbox_pb2.PendingCountRequest(), timeout=5)
        return answer


async def test_the_certificate_names_the_caller(served: Served, tmp_path: Path) -> None:
    await pending(served.first.issue(tmp_path / "gateway", "gateway"), served.address)
    with pytest.raises(PermissionDenied, match="caller 'worker' may not call OutboxService/PendingCount"):
        await pending(served.first.issue(tmp_path / "worker", "worker"), served.address)


async def test_a_common_name_may_name_one_process_of_a_caller(served: Served, tmp_path: Path) -> None:
    """`worker:w-1` is one worker: judged as `worker` by the policy, known as itself (what the
    services check a request's worker id against; tests/integration/test_mesh_auth.py)."""
    await pending(served.first.issue(tmp_path / "gateway-ops", "gateway:ops"), served.address)
    with pytest.raises(PermissionDenied, match="caller 'worker:w-1' may not call OutboxService/PendingCount"):
        await pending(served.first.issue(tmp_path / "worker-w-1", "worker:w-1"), served.address)


async def test_no_or_a_foreign_certificate_gets_no_connection(served: Served, tmp_path: Path) -> None:
    foreign = Authority.make("someone else").issue(tmp_path / "foreign", "gateway")
    trusting = served.first.issue(tmp_path / "trusting", "gateway")
    # A foreign client certificate (trusting the right CA, so only the client side is wrong).
    with pytest.raises(Unavailable):
        await pending(
            MeshAuth(
                MTLS, "gateway", tls_cert=foreign.tls_cert, tls_key=foreign.tls_key, tls_ca=trusting.tls_ca
            ),
            served.address,
        )
    bundle = await asyncio.to_thread(Path(trusting.tls_ca).read_bytes)
    async with grpc.aio.secure_channel(served.address, grpc.ssl_channel_credentials(bundle)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await outbox_pb2_grpc.OutboxServiceStub(channel).PendingCount(
                outbox_pb2.PendingCountRequest(), timeout=5
            )
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_probes_reach_health_on_the_plaintext_port_and_nothing_else(served: Served) -> None:
    async with grpc.aio.insecure_channel(served.health_address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await outbox_pb2_grpc.OutboxServiceStub(channel).PendingCount(
                outbox_pb2.PendingCountRequest(), timeout=5
            )
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_client_channel_follows_its_rotated_files(served: Served, tmp_path: Path) -> None:
    """One channel, one stub: first with a certificate the server does not trust, then with a
    trusted one written over the same files; the stub's calls succeed without a new channel."""
    directory = tmp_path / "client"
    Authority.make("not trusted").issue(directory, "gateway")
    trusted = served.first.issue(tmp_path / "trusted-ca", "gateway")
    auth = MeshAuth(
        MTLS,
        "gateway",
        tls_cert=str(directory / "tls.crt"),
        tls_key=str(directory / "tls.key"),
        tls_ca=trusted.tls_ca,
    )
    async with ClientAuth(auth).open(served.address) as channel:
        stub = outbox_pb2_grpc.OutboxServiceStub(channel)
        with pytest.raises(Unavailable):
            await stub.PendingCount(outbox_pb2.PendingCountRequest(), timeout=5)
        served.first.issue(directory, "gateway")  # cert-manager renews into the same files

        async def answered() -> bool:
            try:
                await stub.PendingCount(outbox_pb2.PendingCountRequest(), timeout=5)
            except Unavailable:
                return False
            return True

        await wait_for(answered, what="the channel to use the rotated client files", within=10.0)


async def test_rotated_server_files_are_served_without_a_restart(served: Served, tmp_path: Path) -> None:
    second = Authority.make("noetl-mesh test CA 2")
    second.issue(served.server_dir, "outbox")  # rewrites the server's certificate, key and CA bundle
    moved = second.issue(tmp_path / "gateway-2", "gateway")
    old = served.first.issue(tmp_path / "gateway-1", "gateway")

    async def rotated() -> bool:
        try:
            await pending(moved, served.address)
        except Unavailable:
            return False
        return True

    await wait_for(rotated, what="the server to present and trust the rotated files", within=10.0)
    with pytest.raises(Unavailable):
        await pending(old, served.address)
