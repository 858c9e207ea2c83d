"""mTLS material for the mesh: a server that picks up rotated files, client channel credentials.

A server's certificate, key and CA bundle are re-read when the files change: gRPC asks for the
current configuration at every new handshake, so a rotated certificate (cert-manager rewriting a
mounted Secret) is served from the next connection on, with no restart. A client reads its
files when it opens a channel (docs/security.md says what that means for rotation).
"""

from __future__ import annotations

import grpc

from services.common.mesh_auth import MeshAuth, WatchedFile


class _ServerFiles:
    def __init__(self, auth: MeshAuth) -> None:
        self._cert = WatchedFile(auth.tls_cert)
        self._key = WatchedFile(auth.tls_key)
        self._ca = WatchedFile(auth.tls_ca)

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self._key.text().encode(), self._cert.text().encode())],
            root_certificates=self._ca.text().encode(),
        )

    def changed(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when any file changed since the last handshake, else None."""
        changed = [watched.refresh() for watched in (self._cert, self._key, self._ca)]
        return self.configuration() if any(changed) else None


def server_credentials(auth: MeshAuth) -> grpc.ServerCredentials:
    """TLS that requires and verifies a client certificate; rotated files take effect live.

    Raises:
        OSError: a file cannot be read.
    """
    files = _ServerFiles(auth)
    return grpc.dynamic_ssl_server_credentials(
        files.configuration(), files.changed, require_client_authentication=True
    )


def channel_credentials(auth: MeshAuth) -> grpc.ChannelCredentials:
    """This process's certificate, presented to servers verified against the CA bundle.

    Raises:
        OSError: a file cannot be read.
    """
    return grpc.ssl_channel_credentials(
        root_certificates=WatchedFile(auth.tls_ca).text().encode(),
        private_key=WatchedFile(auth.tls_key).text().encode(),
        certificate_chain=WatchedFile(auth.tls_cert).text().encode(),
    )
