"""A browser form's policy document: parsed, held to the form, and rewritten for a backend.

The `policy` field is the base64 of a JSON document with an `expiration` (ISO 8601, UTC) and
`conditions` that the form's fields must meet (AWS's rules, sigv4-HTTPPOSTConstructPolicy):

    {"name": "value"}  or  ["eq", "$name", "value"]     the field equals the value
    ["starts-with", "$name", "prefix"]                  the field starts with the prefix ("": any);
                                                        each value of a comma-separated Content-Type
    ["content-length-range", min, max]                  the file's size, in bytes

Field names and operators are case-insensitive, values are not; `bucket` is the bucket the form
is posted to. Every field of the form must be named by a condition, except the signature's own
fields, `file` and `x-ignore-*`. A document S3 could not read is `InvalidPolicyDocument` (400), a
form that breaks it `AccessDenied` (403), naming the condition. No I/O.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from addon.s3.errors import S3Error

_EXPIRATION = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?Z")
RANGE = "content-length-range"
_OPERATORS = ("eq", "starts-with", RANGE)
# Fields no condition needs to name: the signature's own, and what S3 never reads as a field.
EXEMPT = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"})
SIMPLE = "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified."


def invalid(detail: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {detail}")


def refused(detail: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {detail}")


@dataclass(frozen=True)
class Condition:
    operator: str  # eq, starts-with or content-length-range
    name: str  # the field as the condition names it, without "$" ("" for a range)
    value: str = ""
    low: int = 0
    high: int = 0
    named: bool = True  # a list condition names its field with "$": one without never holds
    shown: str = ""  # as S3 shows it when it fails

    def holds(self, values: Mapping[str, str]) -> bool:
        """Whether the form's `values` (names in lower case) meet it (a range: see FileTail)."""
        if self.operator == RANGE:
            return True
        if not self.named:
            return False
        value = values.get(self.name.lower(), "")
        if self.operator == "eq":
            return value == self.value
        if self.name.lower() == "content-type":
            return all(v.strip().startswith(self.value) for v in value.split(","))
        return value.startswith(self.value)


@dataclass(frozen=True)
class Policy:
    document: dict[str, Any]
    expiration: float
    conditions: tuple[Condition, ...]

    @property
    def size_range(self) -> tuple[int, int] | None:
        """The file's size every content-length-range allows, or None when none limits it."""
        ranges = [(c.low, c.high) for c in self.conditions if c.operator == RANGE]
        if not ranges:
            return None
        return max(low for low, _ in ranges), min(high for _, high in ranges)


def parse(encoded: str) -> Policy:
    """The policy field's document; InvalidPolicyDocument for anything S3 could not read."""
    try:
        text = base64.b64decode("".join(encoded.split()), validate=True)
        document = json.loads(text)
    except (binascii.Error, ValueError):
        raise invalid("Invalid JSON.") from None
    if not isinstance(document, dict):
        raise invalid("Invalid JSON.")
    if "expiration" not in document:
        raise invalid("Policy missing expiration.")
    if "conditions" not in document:
        raise invalid("Policy missing conditions.")
    conditions = document["conditions"]
    if not isinstance(conditions, list):
        raise invalid("The 'conditions' value must be a list.")
    parsed = tuple(_condition(c) for c in conditions)
    return Policy(document, _expiration(document["expiration"]), parsed)


def _expiration(value: object) -> float:
    match = _EXPIRATION.fullmatch(value) if isinstance(value, str) else None
    parts = tuple(map(int, match.groups())) if match else ()
    if not parts or not _real_date(*parts):
        raise invalid(f"Invalid 'expiration' value: '{value}'")
    return float(calendar.timegm((*parts, 0, 0, 0)))


def _real_date(year: int, month: int, day: int, hour: int, minute: int, second: int) -> bool:
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return False
    return 1 <= day <= calendar.monthrange(year, month)[1]


def _condition(item: object) -> Condition:
    if isinstance(item, dict):
        if len(item) != 1:
            raise invalid(SIMPLE)
        ((name, value),) = item.items()
        if not isinstance(value, str):
            raise invalid(f"Invalid Simple-Condition: the value of '{name}' must be a string.")
        return Condition("eq", name, value, shown=_shown(["eq", f"${name}", value]))
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise invalid(f"Invalid Condition: {json.dumps(item)}")
    operator = item[0].lower()
    if operator not in _OPERATORS or len(item) != 3:
        raise invalid(f"Invalid Condition: {json.dumps(item)}")
    if operator == RANGE:
        low, high = _size(item[1]), _size(item[2])
        if low is None or high is None:
            raise invalid(f"Invalid content-length-range: {json.dumps(item)}")
        return Condition(RANGE, "", low=low, high=high, shown=_shown(item))
    name, value = item[1], item[2]
    if not isinstance(name, str) or not isinstance(value, str):
        raise invalid(f"Invalid Condition: {json.dumps(item)}")
    named = name.startswith("$")
    return Condition(operator, name.removeprefix("$"), value, named=named, shown=_shown(item))


def _size(value: object) -> int | None:
    """A size in a content-length-range: a non-negative integer, or one written as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, int) and value >= 0 else None


def _shown(condition: list[Any]) -> str:
    return json.dumps(condition)


def check(policy: Policy, fields: Mapping[str, str], bucket: str, now: float) -> None:
    """The policy held to the form (`fields`: names in lower case) posted to `bucket`, at
    `now`; AccessDenied naming what fails. The file's size is FileTail's to check."""
    if now > policy.expiration:
        raise refused("Policy expired.")
    values = {**fields, "bucket": bucket}
    for condition in policy.conditions:
        if not condition.holds(values):
            raise refused(f"Policy Condition failed: {condition.shown}")
    named = {c.name.lower() for c in policy.conditions if c.operator != RANGE}
    for name in [*fields, "bucket"]:
        if name not in named and name not in EXEMPT and not name.startswith("x-ignore-"):
            raise refused(f"Extra input fields: {name}")


def rewritten(policy: Policy, exact: Mapping[str, str], dropped: frozenset[str]) -> str:
    """The base64 policy a backend is given: each condition on a field of `exact` (names in lower
    case) replaced by an exact match on its new value, those on a field of `dropped` left out, the
    rest as the client wrote it."""
    gone = dropped | set(exact)
    kept = [c for c in policy.document["conditions"] if _field(c) not in gone]
    document = {**policy.document, "conditions": kept + [{k: v} for k, v in exact.items()]}
    return base64.b64encode(json.dumps(document).encode()).decode()


def _field(item: Any) -> str:
    """The field a condition of a parsed document names, lower case ("" for a range)."""
    if isinstance(item, dict):
        return next(iter(item)).lower()
    return item[1].removeprefix("$").lower() if item[0].lower() != RANGE else ""
