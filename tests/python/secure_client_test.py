"""The secured control plane from a second language: Python grpcio against a
legatod with mutual TLS and bearer tokens.

Usage: secure_client_test.py HOST:PORT PROTO_DIR PEM_DIR TOKEN

PEM_DIR holds ca.pem, client.pem / client-key.pem (signed by the CA) and
rogue-client.pem / rogue-client-key.pem (signed by another CA), written by
the Rust test that starts the daemon.
"""
import os
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

# Every call is bounded: a hang is a failure, not a stuck suite.
TIMEOUT = 15


def compile_protos(proto_dir, out_dir):
    files = ["legato/v1/types.proto", "legato/v1/events.proto", "legato/v1/media_plane.proto"]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}",
                      f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
    if rc != 0:
        raise SystemExit(f"protoc failed with {rc}")
    sys.path.insert(0, out_dir)


def read(pem_dir, name):
    with open(os.path.join(pem_dir, name), "rb") as f:
        return f.read()


def channel(target, pem_dir, client, token=None):
    """A TLS channel trusting the test CA, presenting `client`'s
    certificate, with a bearer token on every call when given."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(pem_dir, "ca.pem"),
        private_key=read(pem_dir, f"{client}-key.pem"),
        certificate_chain=read(pem_dir, f"{client}.pem"),
    )
    if token is not None:
        creds = grpc.composite_channel_credentials(
            creds, grpc.access_token_call_credentials(token))
    # The server certificate names localhost and 127.0.0.1; check the name.
    return grpc.secure_channel(
        target, creds, options=[("grpc.ssl_target_name_override", "localhost")])


def expect_error(call, code, what):
    try:
        call()
    except grpc.RpcError as err:
        if err.code() != code:
            raise SystemExit(f"{what}: expected {code}, got {err.code()}: {err.details()}")
        return err
    raise SystemExit(f"{what}: the call succeeded")


def main():
    target, proto_dir, pem_dir, token = sys.argv[1:5]
    out = tempfile.mkdtemp(prefix="legato-py-tls-")
    compile_protos(proto_dir, out)
    from legato.v1 import media_plane_pb2 as mp
    from legato.v1 import media_plane_pb2_grpc as mpg

    # Valid certificate and token: the API works.
    good = channel(target, pem_dir, "client", token)
    stub = mpg.MediaPlaneStub(good)
    session = stub.CreateSession(
        mp.CreateSessionRequest(session_id="py-tls"), timeout=TIMEOUT).session_id
    assert session == "py-tls", session
    listed = stub.ListSessions(mp.ListSessionsRequest(), timeout=TIMEOUT)
    assert any(s.session_id == "py-tls" for s in listed.sessions), listed

    # Health needs no token by default (the TLS client certificate still).
    no_token = channel(target, pem_dir, "client")
    health = health_pb2_grpc.HealthStub(no_token)
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING, reply

    # Missing and wrong tokens: UNAUTHENTICATED, the token never echoed.
    err = expect_error(
        lambda: mpg.MediaPlaneStub(no_token).ListSessions(mp.ListSessionsRequest(), timeout=TIMEOUT),
        grpc.StatusCode.UNAUTHENTICATED, "no token")
    assert err.details() == "missing bearer token", err.details()
    wrong_token = "py-wrong-token-0123456789abcdef"
    wrong = channel(target, pem_dir, "client", wrong_token)
    err = expect_error(
        lambda: mpg.MediaPlaneStub(wrong).CreateSession(mp.CreateSessionRequest(), timeout=TIMEOUT),
        grpc.StatusCode.UNAUTHENTICATED, "wrong token")
    assert err.details() == "invalid bearer token", err.details()
    assert wrong_token not in err.details()

    # A stream without a token is refused too.
    err = expect_error(
        lambda: next(iter(mpg.MediaPlaneStub(no_token).WatchEvents(
            mp.WatchEventsRequest(), timeout=TIMEOUT))),
        grpc.StatusCode.UNAUTHENTICATED, "WatchEvents without token")

    # A client certificate from another CA: the handshake fails, so the
    # call never reaches the service.
    rogue = channel(target, pem_dir, "rogue-client", token)
    expect_error(
        lambda: mpg.MediaPlaneStub(rogue).ListSessions(mp.ListSessionsRequest(), timeout=TIMEOUT),
        grpc.StatusCode.UNAVAILABLE, "rogue client certificate")

    # Plain text to the TLS port fails cleanly.
    plain = grpc.insecure_channel(target)
    expect_error(
        lambda: mpg.MediaPlaneStub(plain).ListSessions(mp.ListSessionsRequest(), timeout=TIMEOUT),
        grpc.StatusCode.UNAVAILABLE, "plaintext to the TLS port")

    # The good client still works after all of that.
    stub.DeleteSession(mp.DeleteSessionRequest(session_id="py-tls"), timeout=TIMEOUT)
    for c in (good, no_token, wrong, rogue, plain):
        c.close()
    print("python secure client: ok")


if __name__ == "__main__":
    main()
