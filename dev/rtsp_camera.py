#!/usr/bin/python3
"""A test RTSP camera: serves an H.264 .mp4 at rtsp://127.0.0.1:<port>/cam in real time.

GStreamer's RTSP server from Debian (installed by ``./dev/infra up``, see dev/lib/rtsp.sh). Its Python
bindings belong to Debian's interpreter, so run it with /usr/bin/python3, not the virtualenv:

    /usr/bin/python3 dev/rtsp_camera.py --port 18554 --media media/car-detection.mp4

Stopping the process (SIGTERM/SIGINT) is a real camera outage: tests use that for reconnects. The
stream ends with the file (no looping); a client that connects after the last one left starts the file
from its beginning.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def build_server(*, media: Path, port: int, mount: str) -> GstRtspServer.RTSPServer:
    factory = GstRtspServer.RTSPMediaFactory()
    # The stream is the file's own H.264, re-packetised: no decoding, so the camera costs almost no CPU.
    factory.set_launch(
        f'( filesrc location="{media}" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )'
    )
    factory.set_shared(True)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory(mount, factory)
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, required=True, help="an H.264 .mp4 file")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--mount", default="/cam")
    args = parser.parse_args()
    if not args.media.is_file():
        parser.error(f"no such file: {args.media}")

    Gst.init(None)
    server = build_server(media=args.media.resolve(), port=args.port, mount=args.mount)
    if server.attach(None) == 0:
        print(f"rtsp camera: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print(f"rtsp camera: serving {args.media.name} at rtsp://127.0.0.1:{args.port}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
