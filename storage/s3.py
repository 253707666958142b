"""S3 settings: one resolution for pyarrow, boto3 and fsspec (pandas, datasets).

Where the endpoint, region and credentials come from, in order:

1. a prefect-aws `AwsCredentials` block, when `PERSONAMATH_AWS_CREDENTIALS_BLOCK` names
   one (prefect_aws is imported only then: storage must not need Prefect);
2. otherwise boto3's own resolution: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
   AWS_SESSION_TOKEN, AWS_PROFILE, ~/.aws/credentials and ~/.aws/config, instance and
   container roles; AWS_REGION/AWS_DEFAULT_REGION; AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL
   or `endpoint_url` in the config file.

boto3 resolves, then the result is handed to pyarrow's S3FileSystem and to fsspec, so
all three clients talk to the same place with the same identity. A custom endpoint
(MinIO, Ceph RadosGW) gets path-style addressing: those servers have no wildcard DNS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError
from pyarrow import fs as pafs

BLOCK_ENV = "PERSONAMATH_AWS_CREDENTIALS_BLOCK"
CONNECT_TIMEOUT_ENV = "PERSONAMATH_S3_CONNECT_TIMEOUT"
REQUEST_TIMEOUT_ENV = "PERSONAMATH_S3_REQUEST_TIMEOUT"
ADDRESSING_ENV = "PERSONAMATH_S3_ADDRESSING"  # "path" | "virtual"; default: path iff custom

# Credentials boto3 can refresh by itself (roles, SSO): a frozen copy would expire in the
# middle of a long run, so pyarrow is left to its own refreshing AWS credential chain.
REFRESHABLE_METHODS = frozenset({
    "iam-role", "container-role", "assume-role", "assume-role-with-web-identity", "sso",
    "custom-process",
})

# botocore >= 1.36 and the AWS C++ SDK add CRC checksums to every upload by default;
# Ceph RadosGW (and older MinIO) then answer multipart uploads with HTTP 411 (§8).
CHECKSUM_ENV_DEFAULTS = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_REQUIRED",
}


class S3ConfigError(RuntimeError):
    """The S3 settings cannot be resolved (e.g. a credentials block that does not load)."""


@dataclass(frozen=True)
class S3Config:
    """Resolved S3 settings. Secrets are kept out of repr() and of every message."""

    endpoint_url: str | None  # None: AWS itself
    region: str
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    source: str = "default AWS chain"
    path_style: bool = False
    connect_timeout: float = 3.0
    request_timeout: float = 10.0

    # -- descriptions (safe to log) ---------------------------------------------------
    @property
    def endpoint_label(self) -> str:
        return self.endpoint_url or f"AWS S3 (region {self.region})"

    def credentials_label(self) -> str:
        """Where the credentials came from, with the key id shortened: never the secret."""
        if not self.access_key:
            return f"credentials from {self.source}"
        return f"access key id ...{self.access_key[-4:]} from {self.source}"

    def redact(self, text: str) -> str:
        """Remove the secret and the session token from a message, just in case an
        underlying library echoed them."""
        for secret in (self.secret_key, self.session_token):
            if secret:
                text = text.replace(secret, "***")
        return text

    # -- clients ------------------------------------------------------------------------
    def filesystem(self) -> pafs.S3FileSystem:
        """pyarrow S3FileSystem with bounded timeouts. pyarrow's own retries are off
        (one attempt per request): storage.backends retries whole operations with a
        deadline, so an unreachable endpoint fails in bounded time."""
        apply_checksum_defaults()
        kwargs: dict[str, Any] = {
            "region": self.region,
            "connect_timeout": self.connect_timeout,
            "request_timeout": self.request_timeout,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        }
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            kwargs["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
            kwargs["scheme"] = parts.scheme or "https"
        # pyarrow addresses AWS virtually and a custom endpoint by path unless forced.
        kwargs["force_virtual_addressing"] = bool(self.endpoint_url) and not self.path_style
        if self.access_key:
            kwargs["access_key"] = self.access_key
            kwargs["secret_key"] = self.secret_key or ""
            if self.session_token:
                kwargs["session_token"] = self.session_token
        return pafs.S3FileSystem(**kwargs)

    def botocore_config(self) -> Config:
        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.request_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path" if self.path_style else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

    def boto3_client(self) -> Any:
        """A boto3 S3 client for the same endpoint and identity (bucket admin, tests)."""
        session = boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
            profile_name=None if self.access_key else self.profile,
            region_name=self.region,
        )
        return session.client("s3", endpoint_url=self.endpoint_url,
                              config=self.botocore_config())

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options: `pandas.read_parquet(uri, storage_options=...)`,
        `datasets.load_dataset("parquet", data_files=..., storage_options=...)`."""
        apply_checksum_defaults()
        opts: dict[str, Any] = {}
        if self.access_key:
            opts["key"] = self.access_key
            opts["secret"] = self.secret_key
            if self.session_token:
                opts["token"] = self.session_token
        elif self.profile:
            opts["profile"] = self.profile
        if self.endpoint_url:
            opts["endpoint_url"] = self.endpoint_url
        opts["client_kwargs"] = {"region_name": self.region}
        opts["config_kwargs"] = {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.request_timeout,
            "retries": {"max_attempts": 5, "mode": "standard"},
            "s3": {"addressing_style": "path" if self.path_style else "auto"},
        }
        return opts


def apply_checksum_defaults() -> None:
    """Checksums only when the operation requires them, unless the user chose (§8).
    Must run before a client is created: both SDKs read these at client creation."""
    for key, value in CHECKSUM_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def resolve_s3_config(block: str | None = None) -> S3Config:
    """S3 settings from a prefect-aws block (by name, or PERSONAMATH_AWS_CREDENTIALS_BLOCK)
    or else from the standard AWS environment, as boto3 resolves it."""
    block = block or os.environ.get(BLOCK_ENV) or None
    try:
        if block:
            session, endpoint, source = _session_from_block(block)
        else:
            # botocore reads AWS_DEFAULT_REGION only; AWS_REGION (other SDKs') wins here.
            session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
            endpoint, source = None, "the AWS environment"
        return _config_from_session(session, endpoint, source)
    except (BotoCoreError, ValueError) as err:  # unknown profile, malformed endpoint, ...
        raise S3ConfigError(f"invalid AWS settings: {type(err).__name__}: {err}") from None


def _session_from_block(name: str) -> tuple[boto3.session.Session, str | None, str]:
    """Load a prefect-aws AwsCredentials block. Imported here only: storage itself must
    work without Prefect installed."""
    try:
        from prefect_aws import AwsCredentials
    except ImportError:
        raise S3ConfigError(
            f"{BLOCK_ENV}={name!r} needs prefect-aws: pip install 'personamath[aws]'"
        ) from None
    try:
        creds = AwsCredentials.load(name, _sync=True)
        session = creds.get_boto3_session()
    except Exception as err:  # any failure to load is a configuration error here
        raise S3ConfigError(
            f"could not load the prefect-aws credentials block {name!r} ({BLOCK_ENV}): "
            f"{type(err).__name__}: {err}"
        ) from None
    endpoint = creds.aws_client_parameters.endpoint_url
    return session, str(endpoint) if endpoint else None, f"prefect-aws block {name!r}"


def _config_from_session(session: boto3.session.Session, endpoint: str | None,
                         source: str) -> S3Config:
    endpoint = endpoint or _custom_endpoint(session)
    region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
    creds = session.get_credentials()
    keys: dict[str, str | None] = {}
    if creds is None:
        source = "nowhere (no AWS credentials found)"
    elif creds.method not in REFRESHABLE_METHODS:
        frozen = creds.get_frozen_credentials()
        keys = {"access_key": frozen.access_key, "secret_key": frozen.secret_key,
                "session_token": frozen.token}
        source = f"{source} ({creds.method})"
    else:
        source = f"{source} ({creds.method}, refreshed by the AWS SDK)"
    return S3Config(
        endpoint_url=endpoint,
        region=region,
        profile=session.profile_name if session.profile_name != "default" else None,
        source=source,
        path_style=_path_style(endpoint),
        connect_timeout=_env_float(CONNECT_TIMEOUT_ENV, 3.0),
        request_timeout=_env_float(REQUEST_TIMEOUT_ENV, 10.0),
        **keys,
    )


def _custom_endpoint(session: boto3.session.Session) -> str | None:
    """The endpoint botocore would use for S3 (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the
    config file), or None when that is AWS itself."""
    client = session.client("s3", region_name=session.region_name or "us-east-1")
    url = str(client.meta.endpoint_url).rstrip("/")
    host = urlsplit(url).hostname or ""
    return None if host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn") \
        else url


def _path_style(endpoint: str | None) -> bool:
    choice = os.environ.get(ADDRESSING_ENV, "").strip().lower()
    if choice in {"path", "virtual"}:
        return choice == "path"
    return endpoint is not None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise S3ConfigError(f"{name}={raw!r} is not a number of seconds") from None
