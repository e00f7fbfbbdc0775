"""Typed settings read from ``VAP_*`` environment variables.

Each process defines ONE settings class that extends :class:`CommonSettings` (or
:class:`DatabaseServiceSettings` when it uses PostgreSQL) with its own fields, so a newcomer finds
every knob of a process in one place. Nested groups use ``__``:
``VAP_DATABASE__URL``, ``VAP_KAFKA__BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vap_common.address_policy import AddressPolicy, remembering, resolver_within
from vap_common.camera_secrets import CameraKeyring


class DatabaseSettings(BaseModel):
    """PostgreSQL connection. Defaults match the local stack started by ``./dev/infra up``."""

    url: str = "postgresql+psycopg2://vap:vap-local-only@127.0.0.1:15432/vap"
    # The schema the tables live in (the whole search_path); tests give each test its own.
    schema_name: str | None = None
    pool_size: int = 5


class KafkaSettings(BaseModel):
    """Kafka connection. Defaults match the local stack started by ``./dev/infra up``."""

    bootstrap_servers: str = "127.0.0.1:19092"
    # Prepended to every topic name; lets tests (or tenants) share one broker without crosstalk.
    topic_prefix: str = ""
    # Static group membership (Kafka's group.instance.id): a consumer restarted under the same id
    # within the session timeout gets its partitions back at once, without a rebalance. Set it per
    # replica and stable across its restarts (supervisord: the program name; Kubernetes: the Pod
    # name). None: dynamic membership (a restarted consumer waits for a rebalance).
    instance_id: str | None = Field(default=None, min_length=1, max_length=200)


def comma_separated(text: str) -> list[str]:
    """The items of ``a, b`` (an environment variable: supervisord cannot pass JSON's double quotes)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _comma_separated(value: object) -> object:
    return comma_separated(value) if isinstance(value, str) else value


CommaSeparated = Annotated[list[str], NoDecode, BeforeValidator(_comma_separated)]


def host_port(entry: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:5432`` for IPv6) as (host, port); None when it is not one."""
    host, _, port = entry.strip().rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def _host_ports(value: object) -> object:
    """Servers given as ``host:port,host:port`` (an environment variable)."""
    if not isinstance(value, str):
        return value
    entries = [entry for entry in value.split(",") if entry.strip()]
    if wrong := [entry for entry in entries if host_port(entry) is None]:
        raise ValueError(f"{wrong} are not host:port")
    return [host_port(entry) for entry in entries]


HostPorts = Annotated[list[tuple[str, int]], NoDecode, BeforeValidator(_host_ports)]


class CameraPolicyOptions(BaseModel):
    """What camera URLs may reach besides the defaults of vap_common.address_policy (which refuse
    loopback, link-local, unspecified and multicast addresses and the platform's own servers):
    ``VAP_CAMERA_POLICY__ALLOW=127.0.0.0/8`` (the local demo), ``VAP_CAMERA_POLICY__DENY=10.9.0.0/16,.corp.example``."""

    allow: CommaSeparated = Field(default_factory=list)  # CIDRs and host names admitted despite the defaults
    deny: CommaSeparated = Field(default_factory=list)  # CIDRs, host names and .domains refused as well
    # Servers of the platform this process does not know by itself (host:port, comma-separated): the
    # operator passes its own (PostgreSQL, Kafka, the Kubernetes API) to its runners.
    platform: HostPorts = Field(default_factory=list)
    # A camera host name the resolver does not answer for within this long counts as not resolving.
    resolve_timeout_seconds: float = Field(default=2.0, gt=0)
    # How long a name's addresses (or its failure to resolve) are kept, so each check needs no lookup
    # (the API's checks; the runner resolves afresh just before each connect).
    resolve_cache_seconds: float = Field(default=30.0, ge=0)

    def policy(self, *, platform: list[tuple[str, int]], remember: bool = True) -> AddressPolicy:
        """The policy of a process that knows ``platform`` itself (its platform_servers()) and is told
        ``self.platform``. ``remember``: answers are kept for resolve_cache_seconds."""
        resolver = resolver_within(self.resolve_timeout_seconds)
        if remember:
            resolver = remembering(resolver, seconds=self.resolve_cache_seconds)
        servers = list(dict.fromkeys([*platform, *self.platform]))
        return AddressPolicy(allow=self.allow, deny=self.deny, platform=servers, resolver=resolver)

    @model_validator(mode="after")
    def _entries_parse(self) -> CameraPolicyOptions:
        self.policy(platform=[])  # raises ValueError naming an entry that is neither a CIDR nor a name
        return self


class CommonSettings(BaseSettings):
    """Settings every VAP process has (the runner has only these and its own: it never opens PostgreSQL)."""

    model_config = SettingsConfigDict(env_prefix="VAP_", env_nested_delimiter="__", extra="ignore")

    environment: Literal["local", "test", "production"] = "local"
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # The keys that seal camera credentials (vap_common.camera_secrets), ``id:base64url-key`` comma-separated,
    # the first sealing: the API seals with it, the operator opens with any. None set: a camera URL
    # with a password or secret query value is refused (never stored in plain text).
    camera_keys: SecretStr = SecretStr("")

    def camera_keyring(self) -> CameraKeyring:
        return CameraKeyring.parse(comma_separated(self.camera_keys.get_secret_value()))

    @model_validator(mode="after")
    def _camera_keys_parse(self) -> CommonSettings:
        self.camera_keyring()  # raises ValueError naming the key that is malformed (never the key itself)
        return self

    def platform_servers(self) -> list[tuple[str, int]]:
        """(host, port) of the servers this process knows the platform by, which no camera may be."""
        servers = (host_port(server) for server in self.kafka.bootstrap_servers.split(","))
        return [server for server in servers if server is not None]


class DatabaseServiceSettings(CommonSettings):
    """Settings of the processes that use PostgreSQL (API, relay, inbox, operator, migrations)."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)

    def platform_servers(self) -> list[tuple[str, int]]:
        from sqlalchemy.engine import make_url  # here: the runner imports this module but never SQLAlchemy

        url = make_url(self.database.url)
        database = [(url.host, url.port or 5432)] if url.host else []
        return [*super().platform_servers(), *database]

    @model_validator(mode="after")
    def _refuse_local_password_in_production(self) -> DatabaseServiceSettings:
        if self.environment == "production" and "vap-local-only" in self.database.url:
            raise ValueError("VAP_DATABASE__URL still has the local development password; set a real one")
        return self
