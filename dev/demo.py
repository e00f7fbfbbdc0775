"""The platform's main job on one machine: run a scenario on a sample video served as an RTSP camera.

Started by ./dev/demo after the servers are up and the schema applied. It starts the API, the outbox
relay, the inbox, the operator (orchestrator + local runtime) and the camera under supervisord
(./dev/services), registers a scenario through the REST API, waits until it is `active`, prints the
people detected per frame as results arrive through GET /api/v1/prediction/..., shuts the scenario
down and waits for `inactive`. With ``--runtime kubernetes`` the platform is instead `helm install`ed
on the local node (charts/vap/values-local.yaml) and `kubectl get videoscenarios,pods` is shown as
the scenario moves.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2

from dev.platform_stack import ROOT, RtspCamera, SupervisedPlatform, create_api_key

MEDIA = ROOT / "media"
STATE = Path(os.environ.get("VAP_STATE_DIR", ROOT / ".vap"))


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


@dataclass
class NodePlatform:
    """The chart installed on the local node (./dev/infra up), and the RTSP camera on loopback (the
    node's Pods use the host's network)."""

    camera: RtspCamera
    namespace: str = "vap-demo"
    api_url: str = "http://127.0.0.1:28000"  # api.port of values-local.yaml
    log_dir: str = "kubectl -n vap-demo logs deploy/<name>"

    @property
    def camera_url(self) -> str:
        return self.camera.url

    def start_all(self) -> None:
        self.camera.start()
        chart = ROOT / "charts" / "vap"
        run(["helm", "upgrade", "--install", "vap", str(chart), "-n", self.namespace, "--create-namespace",
             "-f", str(chart / "values-local.yaml"),
             "--set", f"database.url={os.environ['VAP_DATABASE__URL']}", "--wait", "--timeout", "5m"])  # fmt: skip
        for deployment in ("api", "relay", "inbox", "operator"):
            run(
                ["kubectl", "-n", self.namespace, "rollout", "status", f"deployment/vap-{deployment}", "--timeout=180s"]
            )

    def check_alive(self) -> None:
        if self.camera.process is None or self.camera.process.poll() is not None:
            raise SystemExit("the RTSP camera exited")

    def show(self) -> None:
        run(["kubectl", "-n", self.namespace, "get", "videoscenarios,pods"])

    def stop_all(self) -> None:
        run(["helm", "uninstall", "vap", "-n", self.namespace, "--wait"])
        self.camera.stop()


def run(command: list[str]) -> None:
    """Run a command with its output indented under the step that runs it."""
    print(f"    $ {' '.join(command[:6])}{' ...' if len(command) > 6 else ''}", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).splitlines():
        print(f"      {line}", flush=True)
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} {command[1]} failed ({result.returncode})")


def wait_for_status(
    client: httpx2.Client, scenario: str, wanted: set[str], timeout_seconds: float, check: Callable[[], None]
) -> str:
    """Poll the scenario until its status is in ``wanted``; print each change."""
    deadline, last = time.monotonic() + timeout_seconds, None
    while time.monotonic() < deadline:
        check()
        body = client.get(f"/api/v1/scenario/{scenario}").raise_for_status().json()
        if body["status"] != last:
            last = body["status"]
            print(
                f"    status: {last}"
                + (f" ({body['error_reason']}: {body['error_message']})" if body.get("error_reason") else ""),
                flush=True,
            )
        if last in wanted:
            return last
        if last == "failed":
            raise SystemExit(f"scenario failed: {body.get('error_reason')}: {body.get('error_message')}")
        time.sleep(0.5)
    raise SystemExit(f"scenario still {last!r} after {timeout_seconds:.0f}s; logs in {STATE / 'logs' / 'services'}")


def follow_predictions(client: httpx2.Client, scenario: str, seconds: float, check: Callable[[], None]) -> int:
    """Print, once a second, the people counted in each result that arrived (following next_cursor);
    returns results seen."""
    cursor: str | None = None
    frames, people_total = 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check()
        time.sleep(1.0)
        params: dict[str, str | int] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/api/v1/prediction/{scenario}", params=params).raise_for_status().json()
        cursor = page["next_cursor"]  # present on every page: the next poll goes on from here
        results = page["results"]
        if not results:
            continue
        frames += len(results)
        counts = [sum(1 for d in result["detections"] if d["class"] == "person") for result in results]
        people_total += sum(counts)
        best = max((d for r in results for d in r["detections"]), key=lambda d: d["confidence"], default=None)
        example = f"  e.g. person {best['confidence']:.2f} at {[round(v) for v in best['bbox']]}" if best else ""
        first, last = results[0]["frame_number"], results[-1]["frame_number"]
        print(f"    frames {first:>4}-{last:<4} people per frame {counts}{example}", flush=True)
    say(f"{frames} frames analysed, {people_total} person detections in {seconds:.0f}s")
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the API and services running for manual use")
    parser.add_argument("--seconds", type=float, default=25.0, help="how long to follow the results")
    parser.add_argument("--detector", default="hog_person")
    parser.add_argument("--video", type=Path, default=MEDIA / "one-by-one-person-detection.mp4")
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("VAP_DEMO_API_PORT", "8000")))
    parser.add_argument("--camera-port", type=int, default=int(os.environ.get("VAP_DEMO_CAMERA_PORT", "8554")))
    parser.add_argument(
        "--runtime", choices=("local", "kubernetes"), default="local", help="kubernetes: helm install on the local node"
    )
    args = parser.parse_args()

    stack: SupervisedPlatform | NodePlatform
    show: Callable[[], None] = lambda: None
    if args.runtime == "kubernetes":
        stack = NodePlatform(RtspCamera(args.video, port=args.camera_port))
        show = stack.show
        say(f"helm install of charts/vap on the local node (values-local.yaml) and the RTSP camera ({args.video.name})")
    else:
        stack = SupervisedPlatform(
            state_dir=STATE,
            api_port=args.api_port,
            environment={
                "VAP_ALLOW_FILE_URLS": "true",
                # The camera runs on this machine's loopback, which cameras may not use by default.
                "VAP_CAMERA_POLICY__ALLOW": "127.0.0.0/8",
                "VAP_RUNNER__MAX_WORKERS": "2",
                "VAP_RUNNER__TARGET_FPS": "5",
            },
            camera=args.video,
            camera_port=args.camera_port,
        )
        say(
            "starting api, relay, inbox, operator (local runtime) and the RTSP camera "
            f"({args.video.name}) under supervisord"
        )
    try:
        stack.start_all()
        say("vap-admin keys create --tenant demo (every /api/v1 call needs an API key)")
        api_key = create_api_key({}, tenant="demo")
        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx2.Client(base_url=stack.api_url, timeout=10, headers=headers) as client:
            say(f"POST /api/v1/scenario/init  camera={stack.camera_url} detector={args.detector}")
            created = client.post(
                "/api/v1/scenario/init",
                json={"camera_url": stack.camera_url, "detector": {"name": args.detector}, "name": "demo"},
            )
            created.raise_for_status()
            scenario = created.json()["scenario_uuid"]
            print(f"    scenario_uuid {scenario}", flush=True)
            say("waiting for the scenario to become active")
            wait_for_status(client, scenario, {"active"}, 120, stack.check_alive)
            show()
            say(f"detections as they arrive (GET /api/v1/prediction/{scenario})")
            follow_predictions(client, scenario, args.seconds, stack.check_alive)
            say(f"POST /api/v1/scenario/{scenario}/shutdown")
            client.post(f"/api/v1/scenario/{scenario}/shutdown").raise_for_status()
            wait_for_status(client, scenario, {"inactive"}, 120, stack.check_alive)
            show()
        say(f"Swagger UI: {stack.api_url}/docs" + ("" if args.keep else " (run ./dev/demo --keep to leave it up)"))
        if args.keep:
            print(
                f"    API key of tenant demo (Authorize in Swagger UI; Authorization: Bearer ...): {api_key}",
                flush=True,
            )
        if args.keep and isinstance(stack, NodePlatform):
            say(f"--keep: the release stays installed (API at {stack.api_url}); the camera stops with this process")
            print(
                f"    kubectl -n {stack.namespace} get videoscenarios,pods; "
                f"helm uninstall vap -n {stack.namespace} removes it",
                flush=True,
            )
            stack.camera.stop()
            return 0
        if args.keep:
            say(f"--keep: API at {stack.api_url} and the camera at {stack.camera_url} stay up under supervisord")
            print(
                "    ./dev/services status | logs [name] | restart <name> | down  (./dev/infra down stops them too)",
                flush=True,
            )
            return 0
    except BaseException:
        print(f"demo failed; service logs in {stack.log_dir}", file=sys.stderr)
        raise
    finally:
        if not args.keep:
            stack.stop_all()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
