"""mTLS client-certificate credentials for the uplink (an ``UplinkCredentials``)."""

from __future__ import annotations

import os

import grpc

from agent.provisioning.identity import IdentityStore


class ClientCertificateCredentials:
    """The enrolled identity: key + certificate from the state dir, the gateway verified
    against the stored CA. Re-read on every new channel, so a renewal takes effect on the
    next connection (``generation`` follows the certificate file)."""

    def __init__(self, store: IdentityStore) -> None:
        self._store = store

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        return grpc.ssl_channel_credentials(root_certificates=self._store.ca_pem(),
                                            private_key=self._store.key_pem(),
                                            certificate_chain=self._store.cert_pem())

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def certificate_not_after(self) -> int:
        try:
            return int(self._store.certificate().not_valid_after_utc.timestamp())
        except Exception:  # damaged file: the doctor says so; the reporter just sends 0
            return 0

    def generation(self) -> int:
        try:
            return os.stat(self._store.dir / "cert.pem").st_mtime_ns
        except OSError:
            return 0

    def __repr__(self) -> str:
        return f"ClientCertificateCredentials({self._store.dir})"
