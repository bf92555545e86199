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


def ulaw(sample):
    """G.711 mu-law code of a 16-bit linear sample (ITU-T G.711 segments)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    while exponent > 0 and not magnitude & (0x4000 >> (7 - exponent)):
        exponent -= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def dtmf_pcmu(low, high, ms, n0=0):
    """`ms` of a DTMF key (two tones at about -10 dBm0 each) as mu-law."""
    import math
    return bytes(ulaw(int(3200 * (math.sin(2 * math.pi * low * n / 8000)
                                  + math.sin(2 * math.pi * high * n / 8000))))
                 for n in range(n0, n0 + ms * 8))


def check_detection(stub, mp, leg_id, local_sdp, peer):
    """Detect-only DTMF raises ToneReceived for an in-band key; tone and beep
    detection switch on and off with the documented errors."""
    from legato.v1 import events_pb2 as ev

    def code_of(call):
        try:
            call()
        except grpc.RpcError as e:
            return e.code()
        raise SystemExit("expected an error")

    stub.SetToneHandling(mp.SetToneHandlingRequest(leg_id=leg_id, enabled=True,
                                                   keep_in_audio=True))
    stub.EnableToneDetection(mp.EnableToneDetectionRequest(leg_id=leg_id, countries=["DE"]))
    stub.DisableToneDetection(mp.DisableToneDetectionRequest(leg_id=leg_id))
    assert code_of(lambda: stub.DisableToneDetection(
        mp.DisableToneDetectionRequest(leg_id=leg_id))) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: stub.EnableToneDetection(mp.EnableToneDetectionRequest(
        leg_id=leg_id, countries=["XX"]))) == grpc.StatusCode.INVALID_ARGUMENT
    stub.EnableBeepDetection(mp.EnableBeepDetectionRequest(leg_id=leg_id, timeout_ms=0))
    stub.DisableBeepDetection(mp.DisableBeepDetectionRequest(leg_id=leg_id))
    assert code_of(lambda: stub.EnableBeepDetection(mp.EnableBeepDetectionRequest(
        leg_id=leg_id, timeout_ms=3_600_001))) == grpc.StatusCode.INVALID_ARGUMENT

    tones = []
    got_tone = threading.Event()
    watching = threading.Event()
    call = stub.WatchEvents(mp.WatchEventsRequest(leg_id=leg_id))

    def watch():
        watching.set()
        try:
            for event in call:
                if event.WhichOneof("kind") == "tone_received":
                    tones.append(event.tone_received)
                    got_tone.set()
                    return
        except grpc.RpcError:
            pass

    threading.Thread(target=watch, daemon=True).start()
    watching.wait(5)
    # Where the leg receives: its SDP answer's connection address and port.
    address = [l.split()[-1] for l in local_sdp.splitlines() if l.startswith("c=")][0]
    port = int([l.split()[1] for l in local_sdp.splitlines() if l.startswith("m=audio")][0])
    import struct
    import time
    audio = bytes([0xFF]) * 1600 + dtmf_pcmu(852, 1209, 120) + bytes([0xFF]) * 3200
    start = time.monotonic()
    for i in range(len(audio) // 160):
        header = struct.pack("!BBHII", 0x80, 0, i, i * 160, 0x5059)
        peer.sendto(header + audio[i * 160:(i + 1) * 160], (address, port))
        time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
    if not got_tone.wait(10):
        raise SystemExit("no ToneReceived for the in-band key 7")
    call.cancel()
    assert tones[0].tone == "7", tones
    assert tones[0].source == ev.TONE_SOURCE_IN_BAND, tones
    assert abs(tones[0].duration_ms - 120) <= 20, tones
    stub.SetToneHandling(mp.SetToneHandlingRequest(leg_id=leg_id, enabled=False))


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

    check_detection(stub, mp, leg_id, created.local_sdp, peer)

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
