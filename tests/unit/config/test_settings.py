"""addon.config: the backends file, its VGW_S3_MULTI_BACKEND_<N>_* overrides, its error messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from addon.config.files import ConfigError
from addon.config.settings import load_config, parse_config
from tests.support.files import write_document
from tests.support.processes import REPO

CONFIGS = REPO / "configs"
# file name -> (number of backends, name of the primary)
EXPECTED = {
    "s3-multi-config.json": (2, "aws-s3-primary"),
    "aws-onprem-backup.json": (2, "aws-s3-primary"),
    "multi-region.json": (2, "us-east"),
    "hot-warm-cold.json": (3, "hot-storage"),
    "local.yaml": (3, "primary"),
}

# Distinctive credentials: no error message may ever contain them.
ACCESS = "AKIA-file-access-7Q2Z"
SECRET = "file-secret-wJalrXUtnFEMI-K7MDENG"
ENV_ACCESS = "AKIA-env-access-3X9P"
ENV_SECRET = "env-secret-bPxRfiCYEXAMPLEKEY-41"
CREDENTIALS = (ACCESS, SECRET, ENV_ACCESS, ENV_SECRET)
PREFIX = "VGW_S3_MULTI_BACKEND_"


def entry(**fields: object) -> dict[str, object]:
    """One backend as written in the file; a field given as ... is left out."""
    base: dict[str, object] = {"name": "store", "access": ACCESS, "secret": SECRET}
    return {k: v for k, v in {**base, **fields}.items() if v is not ...}


def write(tmp_path: Path, document: object, suffix: str = ".yaml") -> Path:
    """Write a document (or raw text) as a config file."""
    return write_document(tmp_path / f"config{suffix}", document)


def load(tmp_path: Path, *backends: dict[str, object], environ: dict[str, str] | None = None):
    return load_config(write(tmp_path, {"backends": list(backends)}), environ or {}).backends


def error(tmp_path: Path, document: object, environ: dict[str, str] | None = None, **kw) -> str:
    """The ConfigError message for a document, checked to be one line and free of credentials."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, document, **kw), environ or {})
    message = str(caught.value)
    assert "\n" not in message
    for credential in CREDENTIALS:
        assert credential not in message
    return message


def backend_error(tmp_path: Path, *backends: dict[str, object], **kw) -> str:
    return error(tmp_path, {"backends": list(backends)}, **kw)


def assert_names(message: str, source: object, where: str, field: str) -> None:
    assert message.startswith(f"{source}: {where}: "), message
    assert f": {field}" in message, message


# --- shipped configs ----------------------------------------------------------------------------


# Backends files; configs/haproxy.cfg is haproxy's (tests/e2e/ops/test_haproxy.py runs it).
BACKENDS_FILES = sorted(p for p in CONFIGS.iterdir() if p.suffix in (".json", ".yaml"))


@pytest.mark.parametrize("path", BACKENDS_FILES, ids=lambda p: p.name)
def test_shipped_config_loads(path: Path) -> None:
    assert path.name in EXPECTED, f"new config {path.name}: add it to EXPECTED"
    count, primary = EXPECTED[path.name]
    backends = load_config(path, environ={}).backends
    assert len(backends) == count
    assert backends[0].name == primary
    assert [b.index for b in backends] == list(range(count))


def test_local_demo_config_takes_its_servers_from_the_environment() -> None:
    environ = {}
    for n in range(3):
        environ |= {
            f"{PREFIX}{n}_ACCESS": f"{ENV_ACCESS}-{n}",
            f"{PREFIX}{n}_SECRET": f"{ENV_SECRET}-{n}",
            f"{PREFIX}{n}_ENDPOINT": f"http://127.0.0.1:{40000 + n}",
        }
    backends = load_config(CONFIGS / "local.yaml", environ).backends
    assert [b.name for b in backends] == ["primary", "secondary", "tertiary"]
    assert [b.endpoint for b in backends] == [f"http://127.0.0.1:{40000 + n}" for n in range(3)]
    assert [b.secret for b in backends] == [f"{ENV_SECRET}-{n}" for n in range(3)]
    assert all(b.use_path_style for b in backends)


# --- defaults and decoding ----------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    (backend,) = load(tmp_path, {"access": ACCESS, "secret": SECRET})
    assert backend.index == 0
    assert backend.name == "backend-0"
    assert backend.access == ACCESS and backend.secret == SECRET
    assert backend.region == "us-east-1"
    assert backend.endpoint == "https://s3.amazonaws.com"
    assert backend.meta_bucket == ""
    assert not (backend.disable_checksum or backend.ssl_skip_verify or backend.use_path_style)


@pytest.mark.parametrize("endpoint", ["", None, ...])
@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us-east-1", "https://s3.amazonaws.com"),
        ("eu-west-1", "https://s3.eu-west-1.amazonaws.com"),
        ("", "https://s3.amazonaws.com"),
    ],
)
def test_empty_endpoint_means_aws(tmp_path: Path, endpoint, region: str, expected: str) -> None:
    (backend,) = load(tmp_path, entry(endpoint=endpoint, region=region))
    assert backend.endpoint == expected
    assert backend.region == (region or "us-east-1")


@pytest.mark.parametrize("name", ["", None, ...])
def test_name_defaults_to_the_index(tmp_path: Path, name) -> None:
    backends = load(tmp_path, entry(name="first"), entry(name=name))
    assert [b.name for b in backends] == ["first", "backend-1"]


def test_null_optional_strings_mean_empty(tmp_path: Path) -> None:
    (backend,) = load(tmp_path, entry(region=None, metaBucket=None))
    assert backend.region == "us-east-1" and backend.meta_bucket == ""


def test_every_field_from_the_file(tmp_path: Path) -> None:
    fields = {
        "name": "minio",
        "access": ACCESS,
        "secret": SECRET,
        "endpoint": "https://minio.example.com:9000",
        "region": "eu-central-1",
        "metaBucket": "vgw-meta",
        "disableChecksum": True,
        "sslSkipVerify": True,
        "usePathStyle": True,
    }
    (backend,) = load(tmp_path, fields)
    assert (backend.name, backend.endpoint, backend.region, backend.meta_bucket) == (
        "minio",
        "https://minio.example.com:9000",
        "eu-central-1",
        "vgw-meta",
    )
    assert backend.disable_checksum and backend.ssl_skip_verify and backend.use_path_style


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("HTTPS://S3.Example.COM", "https://s3.example.com"),
        ("https://s3.example.com:443", "https://s3.example.com"),
        ("http://s3.example.com:80/", "http://s3.example.com"),
        ("http://s3.example.com:8080", "http://s3.example.com:8080"),
        ("https://gw.example.com/s3/", "https://gw.example.com/s3"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_endpoint_is_normalised(tmp_path: Path, endpoint: str, expected: str) -> None:
    (backend,) = load(tmp_path, entry(endpoint=endpoint))
    assert backend.endpoint == expected


def test_yaml_and_json_are_equivalent(tmp_path: Path) -> None:
    document = {
        "backends": [
            entry(name="a", endpoint="http://127.0.0.1:9000", usePathStyle=True),
            entry(name="b", region="eu-west-1", metaBucket="meta", sslSkipVerify=True),
        ]
    }
    from_yaml = load_config(write(tmp_path, document, ".yaml"), {})
    from_yml = load_config(write(tmp_path, document, ".yml"), {})
    from_json = load_config(write(tmp_path, document, ".json"), {})
    assert from_yaml == from_yml == from_json
    assert parse_config(document, "inline", {}) == from_json


def test_yaml_yes_no_on_off_are_not_booleans(tmp_path: Path) -> None:
    # YAML 1.1 would turn these into booleans; here a name stays a name.
    text = f"backends:\n  - name: on\n    access: {ACCESS}\n    secret: {SECRET}\n    region: no\n"
    (backend,) = load_config(write(tmp_path, text), {}).backends
    assert (backend.name, backend.region) == ("on", "no")


def test_a_json_file_is_decoded_as_json(tmp_path: Path) -> None:
    # Valid YAML, but not JSON: a .json file must be real JSON.
    text = '{"backends": [\n  {"name": "x", access: "k", "secret": "s"}\n]}'
    message = error(tmp_path, text, suffix=".json")
    assert message.startswith(f"{tmp_path / 'config.json'}: invalid JSON at line 2, column")


def test_repr_hides_the_secret(tmp_path: Path) -> None:
    (backend,) = load(tmp_path, entry())
    assert SECRET not in repr(backend)
    assert SECRET not in str(backend)
    assert "secret" not in repr(backend)


def test_default_environ_is_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith(PREFIX)]:
        monkeypatch.delenv(var)
    monkeypatch.setenv(f"{PREFIX}0_NAME", "from-os-environ")
    (backend,) = load_config(write(tmp_path, {"backends": [entry()]})).backends
    assert backend.name == "from-os-environ"


# --- environment overrides ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "attribute", "expected"),
    [
        ("NAME", "renamed", "name", "renamed"),
        ("ACCESS", ENV_ACCESS, "access", ENV_ACCESS),
        ("SECRET", ENV_SECRET, "secret", ENV_SECRET),
        ("ENDPOINT", "https://backup-s3.example.com/", "endpoint", "https://backup-s3.example.com"),
        ("REGION", "ap-south-1", "region", "ap-south-1"),
        ("META_BUCKET", "env-meta", "meta_bucket", "env-meta"),
        ("DISABLE_CHECKSUM", "true", "disable_checksum", True),
        ("SSL_SKIP_VERIFY", "true", "ssl_skip_verify", True),
        ("USE_PATH_STYLE", "true", "use_path_style", True),
    ],
)
def test_env_overrides_each_field_of_its_backend(
    tmp_path: Path, field: str, value: str, attribute: str, expected: object
) -> None:
    file_backends = load(tmp_path, entry(name="a"), entry(name="b"))
    backends = load(
        tmp_path, entry(name="a"), entry(name="b"), environ={f"{PREFIX}1_{field}": value}
    )
    assert getattr(backends[1], attribute) == expected
    assert backends[0] == file_backends[0]  # other backends untouched


@pytest.mark.parametrize(
    ("value", "expected"),
    [(v, True) for v in ("true", "TRUE", "True", "1", "yes", "Yes", "on", "ON")]
    + [(v, False) for v in ("false", "FALSE", "0", "no", "NO", "off", "Off")],
)
@pytest.mark.parametrize("field", ["DISABLE_CHECKSUM", "SSL_SKIP_VERIFY", "USE_PATH_STYLE"])
def test_env_booleans(tmp_path: Path, field: str, value: str, expected: bool) -> None:
    attribute = field.lower()
    file_value = {"DISABLE_CHECKSUM": "disableChecksum", "SSL_SKIP_VERIFY": "sslSkipVerify"}.get(
        field, "usePathStyle"
    )
    # The file says the opposite, so the override is visible both ways.
    backends = load(
        tmp_path, entry(**{file_value: not expected}), environ={f"{PREFIX}0_{field}": value}
    )
    assert getattr(backends[0], attribute) is expected


def test_env_supplies_credentials_missing_from_the_file(tmp_path: Path) -> None:
    environ = {f"{PREFIX}0_ACCESS": ENV_ACCESS, f"{PREFIX}0_SECRET": ENV_SECRET}
    (backend,) = load(tmp_path, entry(access=..., secret=...), environ=environ)
    assert (backend.access, backend.secret) == (ENV_ACCESS, ENV_SECRET)


def test_env_region_moves_the_default_aws_endpoint(tmp_path: Path) -> None:
    (backend,) = load(tmp_path, entry(), environ={f"{PREFIX}0_REGION": "eu-west-1"})
    assert backend.endpoint == "https://s3.eu-west-1.amazonaws.com"


def test_empty_env_variable_counts_as_unset(tmp_path: Path) -> None:
    # As in the Go prototype: compose files and shells pass VAR= along.
    environ = {f"{PREFIX}0_REGION": "", f"{PREFIX}0_SECRET": "", f"{PREFIX}7_ACCESS": ""}
    (backend,) = load(tmp_path, entry(region="eu-west-1"), environ=environ)
    assert backend.region == "eu-west-1" and backend.secret == SECRET


def test_unrelated_env_variables_are_ignored(tmp_path: Path) -> None:
    environ = {
        "VGW_S3_MULTI_CONFIG": "/elsewhere.json",
        "VGW_S3_MULTI_DEBUG": "maybe",
        "VGW_PORT": ":7070",
        "vgw_s3_multi_backend_0_region": "Not-Valid",
    }
    (backend,) = load(tmp_path, entry(), environ=environ)
    assert backend.region == "us-east-1"


# --- errors: the file ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the config file"):
        load_config(path, {})


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path, {})


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"backends:\n  - name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, {})


def test_invalid_yaml_names_the_line_and_not_the_text(tmp_path: Path) -> None:
    text = f"backends:\n  - name: x\n    access: {ACCESS}\n    secret: '{SECRET}\n"
    message = error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'config.yaml'}: invalid YAML at line ")


def test_invalid_json_names_the_line_and_not_the_text(tmp_path: Path) -> None:
    text = f'{{"backends": [\n  {{"access": "{ACCESS}",\n   "secret": "{SECRET}" "x"}}]}}'
    message = error(tmp_path, text, suffix=".json")
    assert message.startswith(f"{tmp_path / 'config.json'}: invalid JSON at line 3, column")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_duplicate_keys_are_refused(tmp_path: Path, suffix: str) -> None:
    if suffix == ".json":
        text = f'{{"backends": [{{"access": "a", "secret": "{SECRET}", "secret": "{SECRET}x"}}]}}'
    else:
        text = f"backends:\n  - access: a\n    secret: {SECRET}\n    secret: {SECRET}x\n"
    message = error(tmp_path, text, suffix=suffix)
    assert "duplicate key 'secret'" in message


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("", "the config is empty"),
        ("- a\n- b\n", "the top level must be a mapping with a 'backends' list, got a list"),
        ("just text\n", "got a string"),
        ({"servers": []}, "unknown top-level key 'servers'"),
        ({"backend": []}, "unknown top-level key 'backend', did you mean 'backends'?"),
        ({"backends": [entry()], "debug": True}, "unknown top-level key 'debug'"),
        ({}, "backends: must be a non-empty list"),
        ({"backends": []}, "backends: must be a non-empty list (the first is the primary), got an"),
        ({"backends": {"name": "x"}}, "backends: must be a non-empty list"),
        ({"backends": None}, "got null"),
    ],
)
def test_wrong_top_level(tmp_path: Path, document: object, problem: str) -> None:
    message = error(tmp_path, document)
    assert message.startswith(f"{tmp_path / 'config.yaml'}: "), message
    assert problem in message


def test_backend_that_is_not_a_mapping(tmp_path: Path) -> None:
    message = error(tmp_path, {"backends": [entry(), "minio"]})
    assert (
        message
        == f"{tmp_path / 'config.yaml'}: backends[1]: must be a mapping of fields, got a string"
    )


@pytest.mark.parametrize(
    ("field", "suggestion"),
    [
        ("usePathstyle", "usePathStyle"),
        ("use_path_style", "usePathStyle"),
        ("endpiont", "endpoint"),
        ("meta_bucket", "metaBucket"),
        ("secretKey", "secret"),
        ("bucket", "metaBucket"),
        ("tags", None),
    ],
)
def test_unknown_field(tmp_path: Path, field: str, suggestion: str | None) -> None:
    message = backend_error(tmp_path, entry(), entry(name="minio", **{field: True}))
    assert_names(
        message, tmp_path / "config.yaml", 'backends[1] ("minio")', f"unknown field {field!r}"
    )
    if suggestion:
        assert message.endswith(f", did you mean {suggestion!r}?")
    else:
        assert "did you mean" not in message


@pytest.mark.parametrize("credential", ["access", "secret"])
@pytest.mark.parametrize("value", [..., "", None])
def test_credentials_are_required(tmp_path: Path, credential: str, value: object) -> None:
    message = backend_error(tmp_path, entry(name="minio", **{credential: value}))
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("minio")', credential)
    assert f"is required, set it in the file or with {PREFIX}0_{credential.upper()}" in message


@pytest.mark.parametrize("credential", ["access", "secret"])
def test_credential_of_the_wrong_type_is_not_echoed(tmp_path: Path, credential: str) -> None:
    message = backend_error(tmp_path, entry(name="minio", **{credential: 918273645546}))
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("minio")', credential)
    assert "must be a string" in message and "918273645546" not in message


@pytest.mark.parametrize("credential", ["access", "secret"])
def test_credential_with_surrounding_spaces(tmp_path: Path, credential: str) -> None:
    value = {"access": ACCESS, "secret": SECRET}[credential] + " "
    message = backend_error(tmp_path, entry(name="minio", **{credential: value}))
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("minio")', credential)
    assert "leading or trailing whitespace" in message


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("name", 42, "got the number 42"),
        ("endpoint", 9000, "got the number 9000"),
        ("region", ["us-east-1"], "got a list"),
        ("metaBucket", True, "got true"),
    ],
)
def test_string_field_of_the_wrong_type(tmp_path: Path, field: str, value, shown: str) -> None:
    message = backend_error(tmp_path, entry(), entry(**{field: value}))
    where = "backends[1]" if field == "name" else 'backends[1] ("store")'
    assert_names(message, tmp_path / "config.yaml", where, field)
    assert message.endswith(f"must be a string (quote it in the file), {shown}")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("yes", "the string 'yes'"),
        ("'true'", "the string 'true'"),
        ("1", "the number 1"),
        ("null", "null"),
        ("on", "the string 'on'"),
    ],
)
@pytest.mark.parametrize("field", ["disableChecksum", "sslSkipVerify", "usePathStyle"])
def test_boolean_in_the_file_must_be_a_real_boolean(
    tmp_path: Path, field: str, text: str, shown: str
) -> None:
    document = f"backends:\n  - name: minio\n    access: {ACCESS}\n    secret: {SECRET}\n"
    message = error(tmp_path, document + f"    {field}: {text}\n")
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("minio")', field)
    assert message.endswith(f"must be true or false, unquoted, got {shown}")


@pytest.mark.parametrize("region", ["EU-WEST-1", "us_east_1", "us east 1"])
def test_invalid_region(tmp_path: Path, region: str) -> None:
    message = backend_error(tmp_path, entry(name="minio", region=region))
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("minio")', "region")
    assert message.endswith(f"got {region!r}")


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("s3.example.com", "must start with http:// or https://"),
        ("ftp://s3.example.com", "must start with http:// or https://"),
        ("http:s3.example.com", "must start with http:// or https://"),
        ("https://", "has no host"),
        ("https://:9000", "has no host"),
        ("http://s3.example.com:0", "invalid port"),
        ("http://s3.example.com:65536", "port (1-65535)"),
        ("http://s3.example.com:http", "port (1-65535)"),
        ("http://s3.example.com/?x-id=1", "must not have a query"),
        ("http://s3.example.com/#top", "must not have a query (?) or fragment (#)"),
        ("http://s3.example .com", "must not contain spaces"),
        ("http://s3!example.com", "has an invalid host"),
    ],
)
def test_invalid_endpoint(tmp_path: Path, endpoint: str, problem: str) -> None:
    message = backend_error(tmp_path, entry(), entry(name="minio", endpoint=endpoint))
    assert_names(message, tmp_path / "config.yaml", 'backends[1] ("minio")', "endpoint")
    assert problem in message
    assert message.endswith(f", got {endpoint!r}")


def test_endpoint_with_credentials_is_refused_without_echoing_them(tmp_path: Path) -> None:
    endpoint = "https://someuser:hunter2-endpoint-password@s3.example.com"
    message = backend_error(tmp_path, entry(name="minio", endpoint=endpoint))
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("minio")', "endpoint")
    assert "must not contain credentials" in message
    assert "hunter2" not in message and "someuser" not in message


def test_credential_pasted_into_another_field_is_masked(tmp_path: Path) -> None:
    message = backend_error(tmp_path, entry(name="minio", region=SECRET))
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("minio")', "region")
    assert "'***'" in message


def test_name_with_odd_characters_stays_on_one_line(tmp_path: Path) -> None:
    message = backend_error(tmp_path, entry(name='two\nlines "quoted"', region="BAD"))
    assert 'backends[0] ("two\\nlines \\"quoted\\"")' in message


# --- errors: the environment --------------------------------------------------------------------


def test_env_override_for_a_backend_the_file_lacks(tmp_path: Path) -> None:
    var = f"{PREFIX}2_SECRET"
    message = backend_error(tmp_path, entry(), entry(), environ={var: ENV_SECRET})
    assert message.startswith(f"{var}: backends[2]: no such backend")
    assert f"{tmp_path / 'config.yaml'} has 2 backends (0-1)" in message


def test_env_override_when_the_file_has_one_backend(tmp_path: Path) -> None:
    var = f"{PREFIX}1_ACCESS"
    message = backend_error(tmp_path, entry(), environ={var: ENV_ACCESS})
    assert message.startswith(f"{var}: backends[1]: no such backend")
    assert "has 1 backend (index 0)" in message


@pytest.mark.parametrize("index", ["X", "one", "01", "-1", ""])
def test_env_override_with_a_bad_index(tmp_path: Path, index: str) -> None:
    var = f"{PREFIX}{index}_ACCESS"
    message = backend_error(tmp_path, entry(), environ={var: ENV_ACCESS})
    assert message.startswith(f"{var}: expected {PREFIX}<N>_<FIELD> with N a backend index")


@pytest.mark.parametrize(
    ("field", "suggestion"),
    [
        ("SECRET_KEY", "SECRET"),
        ("USEPATHSTYLE", "USE_PATH_STYLE"),
        ("ACCES", "ACCESS"),
        ("X", None),
    ],
)
def test_env_override_with_an_unknown_field(
    tmp_path: Path, field: str, suggestion: str | None
) -> None:
    var = f"{PREFIX}0_{field}"
    message = backend_error(tmp_path, entry(name="minio"), environ={var: ENV_SECRET})
    assert message.startswith(f'{var}: backends[0] ("minio"): unknown field {field!r}')
    assert "known: NAME, ACCESS, SECRET" in message
    if suggestion:
        assert message.endswith(f"did you mean {suggestion!r}?")
    else:
        assert "did you mean" not in message


@pytest.mark.parametrize("value", ["maybe", "2", "y", "enabled", " true"])
@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("DISABLE_CHECKSUM", "disableChecksum"),
        ("SSL_SKIP_VERIFY", "sslSkipVerify"),
        ("USE_PATH_STYLE", "usePathStyle"),
    ],
)
def test_env_override_with_a_bad_boolean(tmp_path: Path, field: str, name: str, value: str) -> None:
    var = f"{PREFIX}1_{field}"
    message = backend_error(tmp_path, entry(), entry(name="minio"), environ={var: value})
    assert_names(message, var, 'backends[1] ("minio")', name)
    assert message.endswith(f"must be true/false, 1/0, yes/no or on/off, got {value!r}")


def test_env_value_errors_name_the_variable_not_the_file(tmp_path: Path) -> None:
    var = f"{PREFIX}0_ENDPOINT"
    message = backend_error(tmp_path, entry(name="minio"), environ={var: "minio:9000"})
    assert_names(message, var, 'backends[0] ("minio")', "endpoint")
    assert str(tmp_path) not in message


def test_env_name_override_is_used_in_messages(tmp_path: Path) -> None:
    environ = {f"{PREFIX}0_NAME": "renamed", f"{PREFIX}0_REGION": "Bad"}
    message = backend_error(tmp_path, entry(name="minio"), environ=environ)
    assert_names(message, f"{PREFIX}0_REGION", 'backends[0] ("renamed")', "region")


@pytest.mark.parametrize("credential", ["ACCESS", "SECRET"])
def test_env_credential_errors_do_not_echo_it(tmp_path: Path, credential: str) -> None:
    var = f"{PREFIX}0_{credential}"
    value = {"ACCESS": ENV_ACCESS, "SECRET": ENV_SECRET}[credential]
    message = backend_error(tmp_path, entry(name="minio"), environ={var: f" {value}"})
    assert_names(message, var, 'backends[0] ("minio")', credential.lower())


def test_env_credential_pasted_into_another_variable_is_masked(tmp_path: Path) -> None:
    environ = {f"{PREFIX}0_SECRET": ENV_SECRET, f"{PREFIX}0_ENDPOINT": ENV_SECRET}
    message = backend_error(tmp_path, entry(name="minio"), environ=environ)
    assert_names(message, f"{PREFIX}0_ENDPOINT", 'backends[0] ("minio")', "endpoint")
    assert "***" in message


# --- timeouts and proxy-wide settings -----------------------------------------------------------


def test_timeouts_have_defaults_and_can_be_set_per_backend(tmp_path: Path) -> None:
    first, second = load(
        tmp_path,
        entry(name="a"),
        entry(name="b", connectTimeout=1.5, responseTimeout=10, idleTimeout=2),
        environ={f"{PREFIX}0_RESPONSE_TIMEOUT": "7.5"},
    )
    assert (first.connect_timeout, first.response_timeout, first.idle_timeout) == (5, 7.5, 30)
    assert (second.connect_timeout, second.response_timeout, second.idle_timeout) == (1.5, 10, 2)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("5", "must be a number of seconds, unquoted, got the string '5'"),
        (True, "must be a number of seconds, unquoted, got true"),
        (0, "must be more than 0 and at most 86400 seconds, got 0"),
        (-1, "must be more than 0 and at most 86400 seconds, got -1"),
        (1e9, "must be more than 0 and at most 86400 seconds"),
    ],
)
def test_a_bad_timeout_is_named(tmp_path: Path, value: object, problem: str) -> None:
    message = backend_error(tmp_path, entry(idleTimeout=value))
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("store")', "idleTimeout")
    assert problem in message


def test_a_bad_timeout_variable_is_named(tmp_path: Path) -> None:
    message = backend_error(tmp_path, entry(), environ={f"{PREFIX}0_CONNECT_TIMEOUT": "soon"})
    assert message.startswith(f"{PREFIX}0_CONNECT_TIMEOUT: backends[0]")
    assert "connectTimeout: must be a number of seconds, got 'soon'" in message


def test_proxy_wide_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    document = {"backends": [entry()], "clientTimeout": 3, "fallbackOn5xx": True}
    config = load_config(write(tmp_path, document), {})
    assert (config.client_timeout, config.fallback_on_5xx) == (3.0, True)
    overridden = load_config(
        write(tmp_path, document),
        {"VGW_S3_MULTI_CLIENT_TIMEOUT": "9", "VGW_S3_MULTI_FALLBACK_ON_5XX": "off"},
    )
    assert (overridden.client_timeout, overridden.fallback_on_5xx) == (9.0, False)
    default = load_config(write(tmp_path, {"backends": [entry()]}), {})
    assert (default.client_timeout, default.fallback_on_5xx) == (20.0, False)


def test_client_connection_limits_from_the_file_and_the_environment(tmp_path: Path) -> None:
    default = load_config(write(tmp_path, {"backends": [entry()]}), {})
    assert (default.client_idle_timeout, default.max_client_connections) == (60.0, 1024)
    document = {"backends": [entry()], "clientIdleTimeout": 5, "maxClientConnections": 64}
    config = load_config(write(tmp_path, document), {})
    assert (config.client_idle_timeout, config.max_client_connections) == (5.0, 64)
    environ = {
        "VGW_S3_MULTI_CLIENT_IDLE_TIMEOUT": "2.5",
        "VGW_S3_MULTI_MAX_CLIENT_CONNECTIONS": "10",
    }
    overridden = load_config(write(tmp_path, document), environ)
    assert (overridden.client_idle_timeout, overridden.max_client_connections) == (2.5, 10)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("64", "must be a whole number, unquoted, got the string '64'"),
        (1.5, "must be a whole number, unquoted, got the number 1.5"),
        (True, "must be a whole number, unquoted, got true"),
        (0, "must be from 1 to 1000000, got 0"),
    ],
)
def test_a_bad_connection_count_is_named(tmp_path: Path, value: object, problem: str) -> None:
    message = error(tmp_path, {"backends": [entry()], "maxClientConnections": value})
    assert message == f"{tmp_path / 'config.yaml'}: maxClientConnections: {problem}"
    environ = {"VGW_S3_MULTI_MAX_CLIENT_CONNECTIONS": "many"}
    message = error(tmp_path, {"backends": [entry()]}, environ=environ)
    assert message == (
        "VGW_S3_MULTI_MAX_CLIENT_CONNECTIONS: maxClientConnections: must be a whole number, "
        "got 'many'"
    )


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    message = error(tmp_path, {"backends": [entry()], "fallbackOn5xx": "yes"})
    assert message == (
        f"{tmp_path / 'config.yaml'}: fallbackOn5xx: must be true or false, unquoted, "
        "got the string 'yes'"
    )
    message = error(tmp_path, {"backends": [entry()]}, environ={"VGW_S3_MULTI_CLIENT_TIMEOUT": "x"})
    assert (
        message
        == "VGW_S3_MULTI_CLIENT_TIMEOUT: clientTimeout: must be a number of seconds, got 'x'"
    )


def test_an_unknown_top_level_key_suggests_a_setting(tmp_path: Path) -> None:
    message = error(tmp_path, {"backends": [entry()], "clienttimeout": 3})
    assert "unknown top-level key 'clienttimeout', did you mean 'clientTimeout'?" in message


# --- migration ----------------------------------------------------------------------------------


def test_migrate_is_off_unless_a_fallback_asks_for_copies_on_read(tmp_path: Path) -> None:
    primary, warm, cold = load(
        tmp_path,
        entry(name="new"),
        entry(name="warm", migrate="on-read"),
        entry(name="cold"),
        environ={f"{PREFIX}2_MIGRATE": "on-read"},
    )
    assert (primary.migrate, warm.migrate, cold.migrate) == ("off", "on-read", "on-read")
    (_, warm) = load(
        tmp_path, entry(), entry(migrate="on-read"), environ={f"{PREFIX}1_MIGRATE": "off"}
    )
    assert warm.migrate == "off"


@pytest.mark.parametrize(("value", "shown"), [("always", "'always'"), ("ON-READ", "'ON-READ'")])
def test_a_bad_migrate_value_is_named(tmp_path: Path, value: str, shown: str) -> None:
    message = backend_error(tmp_path, entry(), entry(name="warm", migrate=value))
    assert_names(message, tmp_path / "config.yaml", 'backends[1] ("warm")', "migrate")
    assert f"must be one of off, on-read, got {shown}" in message
    message = backend_error(tmp_path, entry(), entry(), environ={f"{PREFIX}1_MIGRATE": value})
    assert message.startswith(f"{PREFIX}1_MIGRATE: backends[1]")


def test_a_bad_migrate_type_is_named(tmp_path: Path) -> None:
    message = backend_error(tmp_path, entry(), entry(migrate=True))
    assert "migrate: must be a string (quote it in the file), got true" in message


def test_the_primary_cannot_migrate_to_itself(tmp_path: Path) -> None:
    message = backend_error(tmp_path, entry(name="new", migrate="on-read"), entry())
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("new")', "migrate")
    assert "the primary is where copies go; set it on a fallback" in message


# --- replication and failover -------------------------------------------------------------------


def test_replicate_is_off_unless_a_backend_asks_for_copies_of_writes(tmp_path: Path) -> None:
    document = {
        "backends": [entry(name="main", metaBucket="meta"), entry(name="dr"), entry(name="bak")],
    }
    environ = {f"{PREFIX}1_REPLICATE": "sync", f"{PREFIX}2_REPLICATE": "async"}
    config = load_config(write(tmp_path, document), environ)
    assert [b.replicate for b in config.backends] == ["off", "sync", "async"]
    assert [b.name for b in config.replicas] == ["dr", "bak"]
    assert config.read_failover is True
    plain = load_config(write(tmp_path, {"backends": [entry(), entry()]}), {})
    assert plain.replicas == ()


def test_a_bad_replicate_value_is_named(tmp_path: Path) -> None:
    document = {"backends": [entry(metaBucket="meta"), entry(name="dr", replicate="always")]}
    message = error(tmp_path, document)
    assert_names(message, tmp_path / "config.yaml", 'backends[1] ("dr")', "replicate")
    assert "must be one of off, sync, async, got 'always'" in message


def test_the_primary_cannot_replicate_to_itself(tmp_path: Path) -> None:
    message = backend_error(tmp_path, entry(name="main", replicate="sync"), entry())
    assert_names(message, tmp_path / "config.yaml", 'backends[0] ("main")', "replicate")
    assert "the primary is what replicas copy; set it on another backend" in message


def test_a_replica_needs_the_primarys_meta_bucket(tmp_path: Path) -> None:
    message = error(
        tmp_path, {"backends": [entry(name="main"), entry(name="dr", replicate="async")]}
    )
    assert_names(message, tmp_path / "config.yaml", 'backends[1] ("dr")', "replicate")
    assert "needs the primary's metaBucket" in message


def test_read_failover_can_be_turned_off(tmp_path: Path) -> None:
    document = {"backends": [entry()], "readFailover": False}
    assert load_config(write(tmp_path, document), {}).read_failover is False
    environ = {"VGW_S3_MULTI_READ_FAILOVER": "false"}
    assert load_config(write(tmp_path, {"backends": [entry()]}), environ).read_failover is False


def test_reconcile_interval_defaults_to_ten_minutes_and_0_turns_it_off(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, {"backends": [entry()]}), {}).reconcile_interval == 600
    document = {"backends": [entry()], "reconcileInterval": 0}
    assert load_config(write(tmp_path, document), {}).reconcile_interval == 0
    environ = {"VGW_S3_MULTI_RECONCILE_INTERVAL": "30"}
    assert load_config(write(tmp_path, document), environ).reconcile_interval == 30
    with pytest.raises(ConfigError, match=r"reconcileInterval: must be 0 \(off\) and at most"):
        load_config(write(tmp_path, {"backends": [entry()], "reconcileInterval": -1}), {})
