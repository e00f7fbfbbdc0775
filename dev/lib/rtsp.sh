# RTSP test camera: GStreamer's RTSP server from Debian, run by Debian's /usr/bin/python3 (the GObject
# bindings belong to that interpreter, not to the virtualenv). The camera itself is dev/rtsp_camera.py.
# shellcheck shell=bash

RTSP_PACKAGES=(gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)

# True when Debian's python can load the RTSP server bindings and the elements the camera's pipeline uses.
rtsp_ready() {
  /usr/bin/python3 - <<'PY' >/dev/null 2>&1
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: F401
Gst.init(None)
missing = [name for name in ("filesrc", "qtdemux", "h264parse", "rtph264pay") if Gst.ElementFactory.find(name) is None]
raise SystemExit(1 if missing else 0)
PY
}

rtsp_install() {
  if rtsp_ready; then return; fi
  apt_install "${RTSP_PACKAGES[@]}"
  rtsp_ready || die "GStreamer RTSP server bindings still not usable by /usr/bin/python3 after installing"
}
