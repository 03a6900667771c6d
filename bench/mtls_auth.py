"""Per-call cost of the mTLS identity check against the static bearer-token check.

    .venv/bin/python bench/mtls_auth.py [--calls 200000]

Every reporting call on the mTLS port runs CertificateAuthenticator.authenticate (cached
certificate parse, revocation-set and status lookups). The baseline in the same run is
BearerTokenAuthenticator.authenticate (constant-time token compare), which it replaces.
Target: ratio <= 3 (the check stays far below the RPC's own cost, ~100 us).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from gateway.auth import BearerTokenAuthenticator, CallerCredentials  # noqa: E402
from gateway.ca import CertificateAuthority  # noqa: E402
from gateway.enrollment import AccessHolder, CertificateAuthenticator  # noqa: E402
from gateway.model import AgentRef  # noqa: E402
from gateway.store.identity import AccessList  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ca = CertificateAuthority.load_or_create(Path(tmp))
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    cert = ca.sign_agent(csr, "hn-bd-001-001", "HN-BD-001", "HN", dt.timedelta(days=30))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    access = AccessHolder.__new__(AccessHolder)
    access.current = AccessList(frozenset(format(n, "x") for n in range(10_000)),
                                {f"hn-bd-001-{n:03d}": "active" for n in range(1, 1000)})
    mtls = CertificateAuthenticator(access)
    ctx = {"x509_pem_cert": (pem,)}
    cert_caller = CallerCredentials({}, lambda: ctx)
    bearer = BearerTokenAuthenticator(["agent-token-for-bench"])
    token_caller = CallerCredentials({"authorization": "Bearer agent-token-for-bench"})
    claim = AgentRef("x", "HN", "HN-BD-001")

    def timed(auth: BearerTokenAuthenticator | CertificateAuthenticator, caller: CallerCredentials) -> float:
        call = auth.authenticate
        started = time.perf_counter()
        for _ in range(args.calls):
            call(caller, claim)
        return float(time.perf_counter() - started) / int(args.calls)

    timed(mtls, cert_caller)  # warm the parse cache
    base = timed(bearer, token_caller)
    cost = timed(mtls, cert_caller)
    print(f"bearer token check: {base * 1e6:.2f} us/call (baseline)")
    print(f"mTLS identity check: {cost * 1e6:.2f} us/call (10k revoked serials, 1k agents)")
    print(f"ratio mtls/bearer = {cost / base:.2f}")


if __name__ == "__main__":
    main()
