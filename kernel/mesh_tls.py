"""mTLS material for the mesh: a server that picks up rotated files, client channel credentials.

A server's certificate, key and CA bundle are re-read when the files change: gRPC asks for the
current configuration at every new handshake, so a rotated certificate (cert-manager rewriting a
mounted Secret) is served from the next connection on, with no restart. A client's channel
(`RotatingChannel`) opens a fresh connection with the new files once they change; calls already
running finish on the old one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

from kernel.mesh_auth import MeshAuth, WatchedFile


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


def client_files(auth: MeshAuth) -> list[WatchedFile]:
    return [WatchedFile(path) for path in (auth.tls_cert, auth.tls_key, auth.tls_ca)]


_Key = tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]]


class _Deferred:
    """A multicallable that calls through whichever channel is current when it is called."""

    def __init__(
        self, owner: RotatingChannel, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._owner = owner
        self._key = (kind, args, tuple(sorted(kwargs.items())))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner.bound(self._key)(*args, **kwargs)


class RotatingChannel(grpc.aio.Channel):
    """A channel whose connection follows its certificate files: when they change (checked at
    most once a second, at call time), later calls go through a new channel built from them.
    Stubs keep working: their multicallables look the current channel up on every call."""

    def __init__(self, open_channel: Callable[[], grpc.aio.Channel], files: Sequence[WatchedFile]) -> None:
        self._open = open_channel
        self._files = files
        self._current = open_channel()
        # Replaced channels stay open for the streams still on them; closed with this one.
        self._retired: list[grpc.aio.Channel] = []
        self._callables: dict[_Key, Any] = {}

    def current(self) -> grpc.aio.Channel:
        if any([watched.refresh() for watched in self._files]):
            self._retired.append(self._current)
            self._current = self._open()
            self._callables.clear()
        return self._current

    def bound(self, key: _Key) -> Any:
        """The current channel's multicallable for `key` (kind, positional and keyword arguments)."""
        channel = self.current()
        found = self._callables.get(key)
        if found is None:
            kind, args, kwargs = key
            found = getattr(channel, kind)(*args, **dict(kwargs))
            self._callables[key] = found
        return found

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(self, "unary_unary", args, kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(self, "unary_stream", args, kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(self, "stream_unary", args, kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(self, "stream_stream", args, kwargs)

    async def __aenter__(self) -> RotatingChannel:
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        for channel in (*self._retired, self._current):
            await channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()
