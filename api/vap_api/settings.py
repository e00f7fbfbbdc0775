"""The settings of the three vap_api processes: the REST API, the outbox relay and the inbox.

Each process reads ONE of these classes (all extend :class:`DatabaseServiceSettings`, so the database and
Kafka groups are shared): ``VAP_PORT``, ``VAP_RELAY__BATCH_SIZE``, ``VAP_INBOX__BATCH_SIZE`` ...
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from vap_common import camera, detector_config
from vap_common.settings import CameraPolicyOptions, DatabaseServiceSettings
from vap_common.tenants import is_valid_tenant

# Detector plug-ins the runner ships (DESIGN.md "Runner"); the runner validates their settings.


class OidcOptions(BaseModel):
    """Access tokens of an OpenID Connect issuer (``VAP_AUTH__OIDC__...``): JWTs it signed with a key it
    publishes at ``jwks_url``, for this API (``audience``), not expired."""

    issuer: str  # the `iss` a token must carry
    audience: str  # the `aud` a token must carry
    jwks_url: str  # the issuer's signing keys (its discovery document's `jwks_uri`)
    tenant_claim: str = "tenant"  # a lower-case DNS label, as an API key's tenant
    # Space-separated (OAuth 2's `scope`) or a list (e.g. `scp`), of the API key scopes' names.
    scope_claim: str = "scope"
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    # A token naming a key id not seen yet fetches the keys again (the issuer rotated them), at most
    # this often: forged key ids cannot make the API hammer the issuer.
    jwks_refresh_cooldown_seconds: float = Field(default=30.0, ge=0)
    leeway_seconds: float = Field(default=30.0, ge=0)  # clock skew allowed on exp, nbf and iat


class AuthOptions(BaseModel):
    """How the API checks its callers (``VAP_AUTH__...``): API keys, and OIDC tokens when ``oidc`` is set."""

    # A key's tenant and scopes are remembered this long after a lookup, so a revoked key keeps
    # working for up to this long in each API process; 0 looks every request's key up.
    key_cache_seconds: float = Field(default=10.0, ge=0)
    # /metrics without a key (Prometheus scraping inside the cluster); false: a key with metrics:read.
    public_metrics: bool = True
    oidc: OidcOptions | None = None


class TenantQuota(BaseModel):
    """What one tenant may hold."""

    # Scenarios registered and not ended (inactive or failed); 0: the tenant may register none.
    max_scenarios: int = Field(default=100, ge=0)
    # Frames per second those scenarios analyse together (one without analysis_fps counts as
    # ApiSettings.max_analysis_fps: the runtime's rate is not known here); None: no limit.
    max_analysis_fps: float | None = Field(default=None, gt=0)


class QuotaOptions(BaseModel):
    """Per-tenant limits: ``VAP_QUOTAS__DEFAULT__MAX_SCENARIOS``, and for some tenants their own
    (``VAP_QUOTAS__TENANTS='{"acme": {"max_scenarios": 500}}'``)."""

    default: TenantQuota = Field(default_factory=TenantQuota)
    tenants: dict[str, TenantQuota] = Field(default_factory=dict)
    # Retry-After of a 429 for a full quota: about how long a shutdown takes to end a scenario.
    retry_after_seconds: int = Field(default=10, ge=1)

    @field_validator("tenants")
    @classmethod
    def _tenant_names(cls, value: dict[str, TenantQuota]) -> dict[str, TenantQuota]:
        if invalid := sorted(name for name in value if not is_valid_tenant(name)):
            raise ValueError(f"not tenant names (lower-case DNS labels): {invalid}")
        return value

    def of(self, tenant: str) -> TenantQuota:
        return self.tenants.get(tenant, self.default)


class ApiSettings(DatabaseServiceSettings):
    """The REST API process (``vap-api``)."""

    auth: AuthOptions = Field(default_factory=AuthOptions)
    quotas: QuotaOptions = Field(default_factory=QuotaOptions)
    camera_policy: CameraPolicyOptions = Field(default_factory=CameraPolicyOptions)
    # The most analysis_fps a scenario may ask for.
    max_analysis_fps: float = Field(default=30.0, gt=0, le=1000)
    # POSTs (register, shut down) per API key or token subject and minute, in each API process; 0: no limit.
    writes_per_minute_per_key: int = Field(default=600, ge=0)

    host: str = "127.0.0.1"  # loopback by default: exposing the API is a deployment decision
    port: int = 8000
    # Uvicorn's access log: one line per request; off for benchmarks.
    access_log: bool = True
    # `file://` camera URLs read files on the runner's machine: only for the local demo and tests.
    allow_file_urls: bool = False
    # Detectors a scenario may use: every one vap_common.detector_config knows, unless narrowed here.
    detectors: list[str] = Field(default_factory=detector_config.names)
    # Limits on what a client may send. 64 KiB is far above any real scenario request.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_camera_url_length: int = Field(
        default=camera.MAX_LENGTH, ge=16, le=camera.MAX_LENGTH
    )  # what Kubernetes can run
    max_detector_settings_bytes: int = Field(default=16 * 1024, ge=2)
    max_idempotency_key_length: int = 200
    # Nesting of detector.settings: real settings need a few levels, and the response serialiser
    # (pydantic) refuses beyond about 255, which would make a stored scenario unreadable.
    max_detector_settings_depth: int = Field(default=32, ge=1, le=200)
    # GET /prediction page size: default and ceiling, so a response never grows without bound.
    prediction_default_limit: int = Field(default=100, ge=1)
    prediction_max_limit: int = Field(default=1000, ge=1)
    # GET /scenarios page size.
    list_default_limit: int = Field(default=50, ge=1)
    list_max_limit: int = Field(default=500, ge=1)
    # PostgreSQL unreachable: the longest a request waits for a new connection (libpq connect_timeout,
    # whole seconds; libpq treats 1 as 2) and for a free pooled one, before it answers 503.
    db_connect_timeout_seconds: int = Field(default=2, ge=2)
    db_pool_timeout_seconds: float = Field(default=2.0, gt=0)
    # Retry-After of those 503s: about how long a restarted database takes to accept connections.
    db_unavailable_retry_after_seconds: int = Field(default=2, ge=1)
    # Admission: POST /scenario/init answers 429 while this many scenarios are still starting
    # (init_startup or in_startup_processing), so a burst cannot queue without bound for the runtimes.
    max_starting_scenarios: int = Field(default=1000, ge=1)
    start_queue_retry_after_seconds: int = Field(default=5, ge=1)
    # GET /scenario shows an active (or in_shutdown_processing) scenario as stale when the runtime
    # has not renewed its lease (workers.heartbeat_at) for this long; the runtime renews every few seconds.
    runtime_stale_after_seconds: float = Field(default=30.0, gt=0)

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one detector must be allowed")
        if unknown := sorted(set(value) - set(detector_config.names())):
            raise ValueError(f"unknown detectors {unknown}; known: {detector_config.names()}")
        return value


class RelayOptions(BaseModel):
    """How the outbox relay claims, publishes and prunes rows."""

    # Rows claimed per transaction (one per scenario at most, see vap_api.outbox.relay).
    batch_size: int = Field(default=200, ge=1)
    # Polling is the truth, NOTIFY only a hint: the longest a row waits if a notification is lost.
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    # How long librdkafka tries to deliver one batch before the relay gives up and retries later;
    # the claimed rows stay locked meanwhile, so keep it well under a minute.
    delivery_timeout_seconds: float = Field(default=10.0, gt=0)
    # Backoff after a failed batch (Kafka or PostgreSQL down): doubles up to the maximum.
    min_backoff_seconds: float = Field(default=0.2, gt=0)
    max_backoff_seconds: float = Field(default=30.0, gt=0)
    # Published rows are kept this long (for audit and debugging), then deleted.
    retention_hours: float = Field(default=168.0, ge=0)
    prune_interval_seconds: float = Field(default=300.0, gt=0)
    # Rows deleted per prune transaction: small, so pruning never holds long locks.
    prune_batch_size: int = Field(default=1000, ge=1)
    # Refresh of the oldest-unpublished-row gauge.
    gauge_interval_seconds: float = Field(default=5.0, gt=0)


class RelaySettings(DatabaseServiceSettings):
    """The outbox relay process (``vap-relay``)."""

    relay: RelayOptions = Field(default_factory=RelayOptions)
    # Prometheus /metrics port; 0 picks a free port (logged at start).
    metrics_port: int = 9101


class InboxOptions(BaseModel):
    """How the inbox consumes `results`, `scenario_status` and `events`."""

    # Prefixed with the Kafka topic prefix, so isolated tenants/tests never share a group.
    group_id: str = "vap-api-inbox"
    # Messages per batch (one PostgreSQL transaction, one offset commit).
    batch_size: int = Field(default=2000, ge=1)
    poll_timeout_seconds: float = Field(default=0.5, gt=0)
    max_backoff_seconds: float = Field(default=30.0, gt=0)
    # How long the broker waits for a crashed inbox before its partitions go to another instance
    # (the broker accepts 6 to 1800 seconds; Kafka's default of 45 s stopped every scenario's storing
    # that long). A restarted inbox with a static VAP_KAFKA__INSTANCE_ID gets them back at once.
    session_timeout_seconds: float = Field(default=10.0, ge=6, le=1800)
    # Results of a scenario that ended (inactive or failed) are still stored for this long after its
    # end (results and status travel on different topics, so a runner's last results may arrive
    # after its `inactive`); later ones are refused (dead-lettered): nothing runs to produce them.
    late_result_grace_seconds: float = Field(default=300.0, ge=0)
    # Seconds the inbox may see results waiting while it takes none before it exits to be restarted.
    stall_timeout_seconds: float = Field(default=60.0, gt=0)


class InboxSettings(DatabaseServiceSettings):
    """The results/status inbox process (``vap-inbox``)."""

    inbox: InboxOptions = Field(default_factory=InboxOptions)
    metrics_port: int = 9102
