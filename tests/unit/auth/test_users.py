"""addon.users and addon.rights: the users file, its one-line errors, and who may do what."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from addon.auth import rights
from addon.auth.checks import Key
from addon.auth.rights import Right, Role, User
from addon.auth.users import PENDING, Users, load_users
from addon.config.files import ConfigError
from addon.config.settings import load_config
from addon.s3.errors import S3Error
from addon.s3.operations import TABLE
from tests.support.files import write_document

ROOT = Key("root-access-key", "root-secret-never-shown")
# Distinctive secrets: no message may ever contain them.
SECRET = "reader-secret-wJalrXUtnFEMI"
OTHER_SECRET = "writer-secret-bPxRfiCYEXAMPLE"


def reader(**fields: object) -> dict[str, object]:
    """One user as written in the file; a field given as ... is left out."""
    base: dict[str, object] = {"access": "reader", "secret": SECRET, "role": "readonly"}
    return {k: v for k, v in {**base, **fields}.items() if v is not ...}


def write(tmp_path: Path, document: object, suffix: str = ".yaml") -> Path:
    return write_document(tmp_path / f"users{suffix}", document)


def error(tmp_path: Path, document: object, suffix: str = ".yaml") -> str:
    """The one-line message for a bad users file, checked to hold no secret."""
    path = write(tmp_path, document, suffix)
    with pytest.raises(ConfigError) as caught:
        load_users(str(path), ROOT)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    for secret in (SECRET, OTHER_SECRET, ROOT.secret):
        assert secret not in message
    return message.removeprefix(f"{path}: ")


# --- the file -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_users_file_makes_the_key_table_beside_the_root_keys(tmp_path: Path, suffix) -> None:
    document = {
        "users": [
            reader(buckets=["reports-*", "public"]),
            {"access": "writer", "secret": OTHER_SECRET, "role": "user"},
            {"access": "ops", "secret": "ops-secret-3X9P", "role": "admin"},
        ]
    }
    users = load_users(str(write(tmp_path, document, suffix)), ROOT)
    assert users.find("reader") == User("reader", SECRET, Role.READONLY, ("reports-*", "public"))
    assert users.find("writer") == User("writer", OTHER_SECRET, Role.USER)
    assert users.find("ops").role is Role.ADMIN
    assert users.find(ROOT.access) == User(ROOT.access, ROOT.secret, Role.ADMIN)
    with pytest.raises(S3Error) as unknown:
        users.find("nobody")
    assert unknown.value.code == "InvalidAccessKeyId"
    assert unknown.value.extra == {"AWSAccessKeyId": "nobody"}
    shown = repr(users) + repr(users.users) + repr(users.root)
    assert SECRET not in shown and OTHER_SECRET not in shown and ROOT.secret not in shown


def test_an_empty_list_leaves_the_root_keys_alone(tmp_path: Path) -> None:
    users = load_users(str(write(tmp_path, {"users": []})), ROOT)
    assert users.users == () and users.find(ROOT.access).role is Role.ADMIN


def test_until_an_object_is_read_user_keys_are_told_to_try_again() -> None:
    users = Users(ROOT, pending=True)
    assert users.find(ROOT.access) == users.root
    with pytest.raises(S3Error) as waiting:
        users.find("reader")
    assert (waiting.value.status, waiting.value.code) == (503, "ServiceUnavailable")
    assert waiting.value.message == PENDING


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("", "the users file is empty, expected a mapping with 'users'"),
        ("- a\n", "the top level must be a mapping with a 'users' list, got a list"),
        ({"user": []}, "unknown top-level key 'user', did you mean 'users'?"),
        ({"users": {"reader": {}}}, "users: must be a list of users, got a mapping"),
        ({"users": ["reader"]}, "users[0]: must be a mapping of fields, got a string"),
        ({"users": [reader(access=...)]}, "users[0]: access: is required"),
        ({"users": [reader(secret=...)]}, 'users[0] ("reader"): secret: is required'),
        ({"users": [reader(role=...)]}, 'users[0] ("reader"): role: is required'),
        (
            {"users": [reader(rol="user")]},
            "users[0] (\"reader\"): unknown field 'rol', did you mean 'role'?",
        ),
        (
            {"users": [reader(userID=1)]},
            "users[0] (\"reader\"): unknown field 'userID'",
        ),
        (
            {"users": [reader(role="writer")]},
            "users[0] (\"reader\"): role: must be one of admin, user, readonly, got 'writer'",
        ),
        (
            {"users": [reader(access=12)]},
            "users[0]: access: must be a string (quote it in the file), got the number 12",
        ),
        (
            {"users": [reader(access="a/b")]},
            "users[0] (\"a/b\"): access: must be printable ASCII, without spaces or '/'",
        ),
        (
            {"users": [reader(secret=12345678)]},
            'users[0] ("reader"): secret: must be a string (quote it in the file), got a number',
        ),
        (
            {"users": [reader(secret=" padded ")]},
            'users[0] ("reader"): secret: must not be empty or start or end with a space',
        ),
        (
            {"users": [reader(buckets="reports")]},
            'users[0] ("reader"): buckets: must be a list of bucket names or globs, got a string',
        ),
        (
            {"users": [reader(buckets=[])]},
            'users[0] ("reader"): buckets: an empty list allows no bucket; leave it out for '
            "every bucket",
        ),
        (
            {"users": [reader(buckets=["ok", "a/b"])]},
            'users[0] ("reader"): buckets[1]: must be a bucket name or a glob (*, ?, [...]), '
            "got 'a/b'",
        ),
        (
            {"users": [reader(), reader(secret=OTHER_SECRET)]},
            'users[1] ("reader"): access: the same access key as users[0]',
        ),
        (
            {"users": [reader(access=ROOT.access)]},
            f'users[0] ("{ROOT.access}"): access: the root keys\' (they are always admin)',
        ),
    ],
)
def test_a_bad_users_file_is_one_line_naming_the_user_and_the_field(
    tmp_path: Path, document, problem: str
) -> None:
    assert error(tmp_path, document) == problem


@pytest.mark.parametrize("secret", [SECRET, ROOT.secret])
def test_a_secret_pasted_into_another_field_is_masked(tmp_path: Path, secret: str) -> None:
    message = error(tmp_path, {"users": [reader(role=secret)]})
    assert message == "users[0] (\"reader\"): role: must be one of admin, user, readonly, got '***'"


def test_syntax_errors_never_quote_the_line(tmp_path: Path) -> None:
    message = error(tmp_path, f'{{"users": [{{"access": "r", "secret": "{SECRET}",]}}', ".json")
    assert message.startswith("invalid JSON at line 1, column")


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_users(str(tmp_path / "missing.yaml"), ROOT)
    assert str(caught.value).startswith(f"{tmp_path / 'missing.yaml'}: cannot read the config file")


# --- where the config says it is ------------------------------------------------------------


def config_with(tmp_path: Path, **settings: object) -> Path:
    backend = {"access": "AKBACKEND", "secret": "backend-secret"}
    path = tmp_path / "conf" / "backends.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"backends": [backend], **settings}))
    return path


def test_a_relative_users_path_is_beside_the_config_file(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, users="users.yaml", usersPoll=2), {})
    assert config.users == str(tmp_path / "conf" / "users.yaml")
    assert config.users_poll == 2.0


@pytest.mark.parametrize("users", ["/etc/s3-multi/users.yaml", "s3://meta/users.yaml"])
def test_absolute_paths_and_objects_are_kept(tmp_path: Path, users: str) -> None:
    assert load_config(config_with(tmp_path, users=users), {}).users == users


def test_the_variable_is_taken_as_given(tmp_path: Path) -> None:
    environ = {"VGW_S3_MULTI_USERS": "here/users.json"}
    assert (
        load_config(config_with(tmp_path, users="users.yaml"), environ).users == "here/users.json"
    )


def test_no_users_by_default(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path), {})
    assert (config.users, config.users_poll) == ("", 10.0)


# --- rights -------------------------------------------------------------------------------------

OPERATIONS = sorted({op.name for op in TABLE.values()} | {"CopyObject", "UploadPartCopy"})
READS = {
    "GetObject",
    "HeadObject",
    "HeadBucket",
    "GetBucketAcl",
    "GetObjectAcl",
    "GetBucketPolicy",
    "GetBucketLocation",
    "GetObjectTagging",
    "SelectObjectContent",
}
LISTS = {
    "ListBuckets",
    "ListObjects",
    "ListObjectsV2",
    "ListObjectVersions",
    "ListMultipartUploads",
    "ListParts",
}
WRITES = {
    "PutObject",
    "CopyObject",
    "DeleteObject",
    "DeleteObjects",
    "PostObject",
    "CreateBucket",
    "DeleteBucket",
    "PutBucketAcl",
    "PutObjectAcl",
    "PutBucketPolicy",
    "DeleteBucketPolicy",
    "PutObjectTagging",
    "DeleteObjectTagging",
    "PutBucketVersioning",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "RestoreObject",
    "PutObjectRetention",
    "PutObjectLegalHold",
}


def test_each_operation_needs_the_right_the_readme_says() -> None:
    assert {op for op in OPERATIONS if rights.needs(op) is Right.READ} >= READS
    assert {op for op in OPERATIONS if rights.needs(op) is Right.LIST} == LISTS
    assert {op for op in OPERATIONS if rights.needs(op) is Right.WRITE} >= WRITES
    # Every Get and Head reads; every other operation outside the listings changes something.
    for op in OPERATIONS:
        if op not in LISTS and op != "SelectObjectContent":
            assert (rights.needs(op) is Right.READ) == op.startswith(("Get", "Head")), op


def test_an_operation_nobody_knows_is_a_write() -> None:
    assert rights.needs("FrobnicateBucket") is Right.WRITE


READONLY = User("reader", SECRET, Role.READONLY)
SCOPED = User("writer", OTHER_SECRET, Role.USER, ("reports-*", "public"))


@pytest.mark.parametrize("op", OPERATIONS)
def test_roles_grant_their_rights_on_every_operation(op: str) -> None:
    for user in (User("root", "s", Role.ADMIN), User("u", "s", Role.USER)):
        rights.check(user, op, "any-bucket")
    if rights.needs(op) is Right.WRITE:
        with pytest.raises(S3Error) as refused:
            rights.check(READONLY, op, "any-bucket")
        assert (refused.value.status, refused.value.code) == (403, "AccessDenied")
        assert refused.value.message == (
            "Access Denied: reader (readonly) may not write bucket any-bucket."
        )
    else:
        rights.check(READONLY, op, "any-bucket")


def test_bucket_globs_limit_every_right() -> None:
    for bucket in ("reports-2025", "public"):
        for op in ("GetObject", "ListObjectsV2", "PutObject", "DeleteBucket"):
            rights.check(SCOPED, op, bucket)
    for bucket in ("publicity", "reports", "other", "REPORTS-2025"):
        with pytest.raises(S3Error) as refused:
            rights.check(SCOPED, "GetObject", bucket)
        assert refused.value.code == "AccessDenied"
    rights.check(SCOPED, "ListBuckets", None)  # the service: it sees its own buckets only
    assert [b for b in ("public", "reports-1", "secret") if SCOPED.sees(b)] == [
        "public",
        "reports-1",
    ]


def test_a_copy_needs_read_on_its_source_and_write_on_its_destination() -> None:
    rights.check(SCOPED, "CopyObject", "public", copy_source="reports-1")
    with pytest.raises(S3Error) as from_elsewhere:
        rights.check(SCOPED, "CopyObject", "public", copy_source="secret")
    assert from_elsewhere.value.message == (
        "Access Denied: writer (user) may not read bucket secret."
    )
    with pytest.raises(S3Error):
        rights.check(READONLY, "UploadPartCopy", "public", copy_source="public")
