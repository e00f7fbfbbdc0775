"""A burst of 1,000 registrations: the API admits up to its start-queue limit and answers 429 with
Retry-After past it; the local runtime runs no more runners than its capacity and keeps the rest
waiting with a visible reason; shutting every admitted scenario down leaves nothing running.

Before admission existed, 1,000 registrations in 2 minutes started a runner each (load average 200).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2

from dev.platform_stack import PlatformStack, create_api_key
from tests.e2e.e2e_support import CAR_URL, Api, runner_pids
from tests.helpers import pids_with_env, wait_until
from vap_common.settings import KafkaSettings

BURST = 1000
START_QUEUE = 60  # VAP_MAX_STARTING_SCENARIOS
CAPACITY = 3  # VAP_LOCAL__CAPACITY
CLIENTS = 8
# Long enough that no admitted scenario finishes its file during the test: every one holds its slot.
SLOW = {"delay_ms": 2000}


def running_scenarios(marker: str) -> int:
    """How many scenarios have a runner process (a runner, its inference and helper processes count once)."""
    scenarios = set()
    for pid in pids_with_env(marker):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        scenarios.update(item for item in environ if item.startswith(b"VAP_SCENARIO_UUID="))
    return len(scenarios)


def test_a_burst_of_registrations_is_admitted_within_the_limits_and_the_rest_is_refused_cleanly(
    make_platform: Callable[..., PlatformStack], kafka_settings: KafkaSettings, sample_video: Path
) -> None:
    platform: PlatformStack = make_platform(
        VAP_MAX_STARTING_SCENARIOS=str(START_QUEUE),
        VAP_LOCAL__CAPACITY=str(CAPACITY),
        VAP_LOCAL__STARTS_PER_SECOND="20",
        VAP_WRITES_PER_MINUTE_PER_KEY="0",  # the start queue's limit is under test, not the key's rate
    )
    api_key = create_api_key(platform.environment, tenant="burst")
    api = Api(platform.api_url, api_key=api_key, check_alive=platform.check_alive)
    body = {"camera_url": CAR_URL, "detector": {"name": "mock", "settings": SLOW}}
    runner_counts: list[int] = []
    marker = f"VAP_KAFKA__TOPIC_PREFIX={kafka_settings.topic_prefix}"

    clients = threading.local()  # one keep-alive connection per client thread, as a load generator has

    def register(_index: int) -> httpx2.Response:
        if not hasattr(clients, "http"):
            clients.http = httpx2.Client(base_url=platform.api_url, timeout=30, headers=bearer)
            opened.append(clients.http)
        return clients.http.post("/api/v1/scenario/init", json=body)

    bearer = {"Authorization": f"Bearer {api_key}"}
    opened: list[httpx2.Client] = []
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(register, index) for index in range(BURST)]
        while not all(future.done() for future in futures):
            runner_counts.append(running_scenarios(marker))
            time.sleep(0.2)
        responses = [future.result() for future in futures]
    burst_seconds = time.monotonic() - started
    for client in opened:
        client.close()

    codes = sorted({response.status_code for response in responses})
    admitted = [response.json()["scenario_uuid"] for response in responses if response.status_code == 201]
    refused = [response for response in responses if response.status_code == 429]
    print(
        f"ADMISSION burst {BURST} in {burst_seconds:.1f}s: {len(admitted)} admitted, "
        f"{len(refused)} refused (429), codes {codes}"
    )
    assert codes == [201, 429], codes
    # The count is checked before the insert, so concurrent requests may overshoot by at most one each.
    assert START_QUEUE <= len(admitted) <= START_QUEUE + CLIENTS
    assert all(
        int(response.headers["Retry-After"]) > 0 and "retry" in response.json()["detail"].lower()
        for response in refused
    )

    # The runtime starts CAPACITY runners, the rest wait in in_startup_processing with the reason.
    def settled() -> bool:
        statuses = [api.scenario(scenario) for scenario in admitted]
        return (
            sum(s["status"] == "active" for s in statuses) == CAPACITY
            and sum(
                s["status"] == "in_startup_processing" and bool((s.get("runtime") or {}).get("wait_reason"))
                for s in statuses
            )
            == len(admitted) - CAPACITY
        )

    wait_until(
        settled, timeout_seconds=90, interval_seconds=1, what=f"{CAPACITY} active and the rest waiting with a reason"
    )
    runner_counts.append(running_scenarios(marker))
    assert max(runner_counts) == CAPACITY, runner_counts
    waiting = next(api.scenario(s) for s in admitted if api.status(s) == "in_startup_processing")
    assert waiting["runtime"]["wait_reason"].startswith("WaitingForCapacity")

    # The API stayed responsive and still admits once the queue drains: stop everything admitted.
    for scenario in admitted:
        api.shutdown(scenario)
    wait_until(
        lambda: all(api.status(s) == "inactive" for s in admitted),
        timeout_seconds=120,
        interval_seconds=1,
        what="every admitted scenario inactive",
    )
    wait_until(lambda: not any(runner_pids(s) for s in admitted), timeout_seconds=30, what="no runner left")
    api.close()
