"""A second-language client: drives legatod with Python grpcio through the
legato.v1 .proto files, and checks health and server reflection the way
grpcurl uses them.

Usage: client_test.py HOST:PORT PROTO_DIR
"""
import os
import socket
import sys
import tempfile
import threading

import grpc
from grpc_tools import protoc


def compile_protos(proto_dir, out_dir):
    files = ["legato/v1/types.proto", "legato/v1/events.proto", "legato/v1/media_plane.proto"]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}",
                      f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
    if rc != 0:
        raise SystemExit(f"protoc failed with {rc}")
    sys.path.insert(0, out_dir)


def main():
    target, proto_dir = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp(prefix="legato-py-")
    compile_protos(proto_dir, out)
    from legato.v1 import media_plane_pb2 as mp
    from legato.v1 import media_plane_pb2_grpc as mpg
    from legato.v1 import types_pb2 as t

    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = mpg.MediaPlaneStub(channel)

    session = stub.CreateSession(mp.CreateSessionRequest(session_id="py-session")).session_id
    assert session == "py-session", session

    events = []
    got_connected = threading.Event()

    def watch():
        for event in stub.WatchEvents(mp.WatchEventsRequest(session_id=session)):
            events.append(event)
            if event.WhichOneof("kind") == "connected":
                got_connected.set()
                return

    threading.Thread(target=watch, daemon=True).start()

    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    port = peer.getsockname()[1]
    offer = ("v=0\r\no=py 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             f"m=audio {port} RTP/AVP 8 0\r\na=sendrecv\r\n")
    created = stub.CreateLeg(mp.CreateLegRequest(
        session_id=session, direction=t.DIRECTION_INCOMING, remote_sdp=offer,
        metadata=t.LegMetadata(caller_id="+15551230000", display_name="Py Thon",
                               number="+15559870000", client_type=t.CLIENT_TYPE_SIP,
                               custom_data='{"crm": 42}')))
    assert "m=audio" in created.local_sdp, created.local_sdp
    # PCMU is legato's default preference; the offer lists PCMA first.
    assert created.leg.codec.name == "PCMU", created.leg.codec
    leg_id = created.leg.leg_id
    stub.UpdateLeg(mp.UpdateLegRequest(leg_id=leg_id, state=t.LEG_STATE_CONNECTED))
    if not got_connected.wait(10):
        raise SystemExit(f"no Connected event; got {[e.WhichOneof('kind') for e in events]}")
    connected = [e for e in events if e.WhichOneof("kind") == "connected"][0]
    assert connected.leg_id == leg_id and connected.session_id == session
    assert connected.sequence > 0 and connected.timestamp.seconds > 0

    leg = stub.GetLeg(mp.GetLegRequest(leg_id=leg_id)).leg
    assert leg.state == t.LEG_STATE_CONNECTED
    assert leg.metadata.caller_id == "+15551230000" and leg.metadata.custom_data == '{"crm": 42}'
    assert leg.incoming

    try:
        stub.GetLeg(mp.GetLegRequest(leg_id="0123456789abcdef0000"))
        raise SystemExit("GetLeg of an unknown leg succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e.code()
    try:
        start = mp.StreamAudioStart(leg_id=leg_id, sample_rate=8000)
        list(stub.StreamAudio(iter([mp.StreamAudioRequest(start=start)])))
        raise SystemExit("StreamAudio succeeded although it is not built")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e.code()

    # Health, as grpc_health_probe / grpcurl would ask.
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="legato.v1.MediaPlane")).status
    assert status == health_pb2.HealthCheckResponse.SERVING, status

    # Reflection, as grpcurl uses it: list services, resolve a method.
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )
    db = ProtoReflectionDescriptorDatabase(channel)
    services = set(db.get_services())
    assert "legato.v1.MediaPlane" in services, services
    assert "grpc.health.v1.Health" in services, services
    from google.protobuf.descriptor_pool import DescriptorPool
    pool = DescriptorPool(db)
    method = pool.FindServiceByName("legato.v1.MediaPlane").FindMethodByName("CreateLeg")
    assert method.input_type.full_name == "legato.v1.CreateLegRequest"

    stub.DeleteSession(mp.DeleteSessionRequest(session_id=session))
    print("python client: ok")


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        raise SystemExit(f"RPC failed: {e.code()}: {e.details()}")
