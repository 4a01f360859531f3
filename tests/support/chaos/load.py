"""The chaos run's clients: threads, each with a boto3 client of its own (one attempt, no
retries: each request is one recorded `Op`), doing a seeded mix of PUT, GET, DELETE and LIST
on a small key space until a deadline, so that keys are rewritten and deleted concurrently."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from tests.support.chaos.history import DELETE, GET, LIST, PUT, Op, md5

MIX = ((PUT, 0.35), (GET, 0.35), (DELETE, 0.18), (LIST, 0.12))
SIZES = (64, 700, 3000, 12000)  # bytes; a value's own prefix comes on top


@dataclass(frozen=True)
class Load:
    """`make_client()`: a new boto3 client of the proxy (one per thread); `clock()`: seconds
    since the run began."""

    make_client: Callable[[], object]
    bucket: str
    keys: Sequence[str]
    clock: Callable[[], float]


def key_space(count: int) -> list[str]:
    """`count` keys, some under a "directory" so that listings have a prefix to show."""
    return [f"d{i % 4}/k{i:03d}" if i % 2 else f"k{i:03d}" for i in range(count)]


def _outcome(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "error"))
    return "error"


def one_op(load: Load, client, number: int, seq: int, rng: random.Random) -> Op:
    """One request, chosen by `rng`, as an Op (whatever happens, an exception is an outcome)."""
    kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
    key = "" if kind == LIST else rng.choice(load.keys)
    value: str | None = None
    size = 0
    listed: tuple[tuple[str, str], ...] = ()
    data = b""
    if kind == PUT:  # bytes of its own: the MD5 names this write
        data = b"client %d op %d " % (number, seq) + rng.randbytes(rng.choice(SIZES))
        value, size = md5(data), len(data)
    start = load.clock()
    try:
        if kind == PUT:
            client.put_object(Bucket=load.bucket, Key=key, Body=data)
            outcome = "200"
        elif kind == GET:
            body = client.get_object(Bucket=load.bucket, Key=key)["Body"].read()
            outcome, value, size = "200", md5(body), len(body)
        elif kind == DELETE:
            client.delete_object(Bucket=load.bucket, Key=key)
            outcome = "204"
        else:
            answer = client.list_objects_v2(Bucket=load.bucket)
            contents = answer.get("Contents", [])
            listed = tuple((o["Key"], o["ETag"].strip('"')) for o in contents)
            outcome = "200"
    except (
        ClientError,
        BotoCoreError,
        OSError,
        ValueError,
    ) as e:  # urllib3's are ValueError/OSError
        outcome = _outcome(e)
    end = load.clock()
    if kind != PUT and outcome != "200":
        value, size = None, 0
    return Op(number, kind, key, start, end, outcome, value, size, listed)


def run_clients(load: Load, count: int, seed: int, until: float) -> list[Op]:
    """`count` clients until `until` (on load.clock); every client's ops, in no order."""
    histories: list[list[Op]] = [[] for _ in range(count)]
    problems: list[BaseException] = []
    clients = [load.make_client() for _ in range(count)]

    def work(number: int) -> None:
        rng, history = random.Random(f"{seed}-client-{number}"), histories[number]
        try:
            while load.clock() < until:
                history.append(one_op(load, clients[number], number, len(history), rng))
        except BaseException as e:  # a bug in the client itself: the run must say it
            problems.append(e)

    threads = [threading.Thread(target=work, args=(n,), name=f"chaos-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, until - load.clock()) + 60)
    assert not any(t.is_alive() for t in threads), "a chaos client is stuck"
    if problems:
        raise problems[0]
    return [op for history in histories for op in history]
