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
import os
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer


def require_credentials(
    server: GstRtspServer.RTSPServer, factory: GstRtspServer.RTSPMediaFactory, user: str, password: str
) -> None:
    """Basic authentication, as a real camera asks for: a client without these credentials gets 401."""
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    auth = GstRtspServer.RTSPAuth()
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    factory.set_permissions(permissions)


def build_server(
    *, media: Path, port: int, mount: str, credentials: tuple[str, str] | None = None
) -> GstRtspServer.RTSPServer:
    factory = GstRtspServer.RTSPMediaFactory()
    # The stream is the file's own H.264, re-packetised: no decoding, so the camera costs almost no CPU.
    factory.set_launch(
        f'( filesrc location="{media}" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )'
    )
    factory.set_shared(True)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    if credentials is not None:
        require_credentials(server, factory, *credentials)
    server.get_mount_points().add_factory(mount, factory)
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, required=True, help="an H.264 .mp4 file")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--mount", default="/cam")
    parser.add_argument(
        "--user", help="require RTSP basic authentication as this user (the password is read from VAP_CAMERA_PASSWORD)"
    )
    args = parser.parse_args()
    if not args.media.is_file():
        parser.error(f"no such file: {args.media}")

    Gst.init(None)
    credentials = (args.user, os.environ["VAP_CAMERA_PASSWORD"]) if args.user else None
    server = build_server(media=args.media.resolve(), port=args.port, mount=args.mount, credentials=credentials)
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
