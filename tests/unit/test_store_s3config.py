"""Where S3 settings come from: the AWS environment, AWS config files, a prefect-aws
block; and that no secret ends up in a repr or a message."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from pydantic import SecretStr

from storage import storage_options
from storage.s3 import S3Config, S3ConfigError, apply_checksum_defaults, resolve_s3_config

AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
            "AWS_REGION", "AWS_DEFAULT_REGION", "PERSONAMATH_AWS_CREDENTIALS_BLOCK",
            "PERSONAMATH_S3_ADDRESSING", "PERSONAMATH_S3_CONNECT_TIMEOUT",
            "PERSONAMATH_S3_REQUEST_TIMEOUT")
SECRET = "s3cr3t-value-never-printed"


@pytest.fixture(autouse=True)
def clean_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No developer AWS setup leaks in; config files live in tmp_path."""
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no IMDS probe on a laptop
    return tmp_path


def test_env_endpoint_means_path_style(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "MINIOKEY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    cfg = resolve_s3_config()
    assert cfg.endpoint_url == "http://127.0.0.1:9000" and cfg.path_style
    assert cfg.region == "eu-west-3" and cfg.access_key == "MINIOKEY0001"
    assert cfg.secret_key == SECRET and "env" in cfg.source


def test_service_specific_endpoint_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3only:2")
    assert resolve_s3_config().endpoint_url == "http://s3only:2"


def test_aws_itself_has_no_endpoint_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    cfg = resolve_s3_config()
    assert cfg.endpoint_url is None and not cfg.path_style
    assert cfg.endpoint_label == "AWS S3 (region us-west-2)"


def test_profile_from_config_files(monkeypatch: pytest.MonkeyPatch, clean_aws: Path) -> None:
    (clean_aws / "credentials").write_text(
        f"[ceph]\naws_access_key_id = PROFILEKEY0042\naws_secret_access_key = {SECRET}\n")
    (clean_aws / "config").write_text(
        "[profile ceph]\nregion = ap-south-1\nendpoint_url = http://ceph.local:7480\n")
    monkeypatch.setenv("AWS_PROFILE", "ceph")
    cfg = resolve_s3_config()
    assert cfg.access_key == "PROFILEKEY0042" and cfg.region == "ap-south-1"
    assert cfg.endpoint_url == "http://ceph.local:7480" and cfg.path_style
    assert "shared-credentials-file" in cfg.source


def test_addressing_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://storage.example.com")
    monkeypatch.setenv("PERSONAMATH_S3_ADDRESSING", "virtual")
    assert not resolve_s3_config().path_style


def test_timeouts_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAMATH_S3_CONNECT_TIMEOUT", "1.5")
    monkeypatch.setenv("PERSONAMATH_S3_REQUEST_TIMEOUT", "7")
    cfg = resolve_s3_config()
    assert (cfg.connect_timeout, cfg.request_timeout) == (1.5, 7.0)
    monkeypatch.setenv("PERSONAMATH_S3_REQUEST_TIMEOUT", "soon")
    with pytest.raises(S3ConfigError, match="PERSONAMATH_S3_REQUEST_TIMEOUT"):
        resolve_s3_config()


def test_no_secret_in_repr_labels_or_redacted_messages() -> None:
    cfg = S3Config(endpoint_url="http://h:1", region="us-east-1", access_key="AKIAEXAMPLE1234",
                   secret_key=SECRET, session_token="tok-" + SECRET, source="env")
    assert SECRET not in repr(cfg)
    assert cfg.credentials_label() == "access key id ...1234 from env"
    assert SECRET not in cfg.redact(f"signature for {SECRET} failed")


def test_storage_options_for_fsspec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "MINIOKEY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    opts = storage_options("s3://bucket/x")
    assert opts["key"] == "MINIOKEY0001" and opts["secret"] == SECRET
    assert opts["endpoint_url"] == "http://127.0.0.1:9000"
    assert opts["config_kwargs"]["s3"] == {"addressing_style": "path"}
    assert opts["client_kwargs"] == {"region_name": "us-east-1"}


def test_pyarrow_filesystem_gets_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "MINIOKEY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    options = resolve_s3_config().filesystem().__reduce__()[1][0]  # what pyarrow was given
    assert options["endpoint_override"] == "127.0.0.1:9000" and options["scheme"] == "http"
    assert options["region"] == "us-east-1" and not options["force_virtual_addressing"]
    assert options["connect_timeout"] == 3.0 and options["request_timeout"] == 10.0


def test_checksum_default_is_set_but_never_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION", raising=False)
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "WHEN_SUPPORTED")
    apply_checksum_defaults()
    import os

    assert os.environ["AWS_REQUEST_CHECKSUM_CALCULATION"] == "WHEN_REQUIRED"
    assert os.environ["AWS_RESPONSE_CHECKSUM_VALIDATION"] == "WHEN_SUPPORTED"


def fake_prefect_aws(monkeypatch: pytest.MonkeyPatch, blocks: dict[str, object]) -> None:
    """A stand-in prefect_aws module: the real block needs a Prefect API to load from."""
    import boto3

    class AwsCredentials:
        def __init__(self, key: str, secret: str, region: str, endpoint: str | None):
            self.aws_access_key_id, self.region_name = key, region
            self.aws_secret_access_key = SecretStr(secret)
            self.aws_client_parameters = types.SimpleNamespace(endpoint_url=endpoint)

        @classmethod
        def load(cls, name: str, _sync: bool = False) -> AwsCredentials:
            if name not in blocks:
                raise ValueError(f"Unable to find block document named {name}")
            return blocks[name]  # type: ignore[return-value]

        def get_boto3_session(self) -> boto3.session.Session:
            return boto3.session.Session(
                aws_access_key_id=self.aws_access_key_id,
                aws_secret_access_key=self.aws_secret_access_key.get_secret_value(),
                region_name=self.region_name)

    module = types.ModuleType("prefect_aws")
    module.AwsCredentials = AwsCredentials  # type: ignore[attr-defined]
    blocks.update({k: AwsCredentials(*v) for k, v in blocks.items()})  # type: ignore[misc]
    monkeypatch.setitem(sys.modules, "prefect_aws", module)


def test_prefect_block_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_prefect_aws(monkeypatch, {"minio": ("BLOCKKEY0007", SECRET, "eu-central-1",
                                             "http://minio:9000")})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY-IGNORED")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-ignored")
    monkeypatch.setenv("PERSONAMATH_AWS_CREDENTIALS_BLOCK", "minio")
    cfg = resolve_s3_config()
    assert cfg.access_key == "BLOCKKEY0007" and cfg.secret_key == SECRET
    assert cfg.endpoint_url == "http://minio:9000" and cfg.region == "eu-central-1"
    assert "prefect-aws block 'minio'" in cfg.source and cfg.path_style


def test_missing_prefect_block_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_prefect_aws(monkeypatch, {})
    with pytest.raises(S3ConfigError, match="credentials block 'nope'"):
        resolve_s3_config(block="nope")


def test_block_without_prefect_aws_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prefect_aws", None)  # import fails
    with pytest.raises(S3ConfigError, match="needs prefect-aws"):
        resolve_s3_config(block="minio")
