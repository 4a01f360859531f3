"""The addon's hooks and the policy they give each flow, driven with mitmproxy's own test helpers
(no network). What the wrapped mitmproxy internals do with a policy's decisions is tested end to
end (test_routing.py, test_running.py); here, what the decisions are."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import weakref
from pathlib import Path
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from mitmproxy import exceptions, http
from mitmproxy.addons.script import load_script
from mitmproxy.flow import Error
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils

from addon.mitm.policy import PASS, RETRY, AnswerInstead, ReadBody, policy_of
from addon.upstream.exchange import Exchange
from tests.support.processes import REPO

ROOT = REPO
PROXY_HOST = "127.0.0.1:7070"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    backends = [
        {"name": name, "access": f"AK{name.upper()}", "secret": f"{name}-secret"}
        for name in ("hot", "warm")
    ]
    backends[0]["endpoint"], backends[1]["endpoint"] = (
        "http://10.0.0.1:9000",
        "https://warm.example",
    )
    for b in backends:
        b["usePathStyle"] = True
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"backends": backends}))
    return path


_LOOP = asyncio.new_event_loop()


def run(hook, *args):
    """Call a hook or policy method as mitmproxy does: on the event loop (deadlines are
    asyncio timers), awaiting it if it is a coroutine."""

    async def call():
        result = hook(*args)
        return await result if inspect.isawaitable(result) else result

    return _LOOP.run_until_complete(call())


def load_addon():
    """The addon as `mitmdump -s addon/multi.py` loads it."""
    return load_script(str(ROOT / "addon" / "multi.py")).addons[0]


@pytest.fixture
def tctx(config: Path):
    addon = load_addon()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon, s3multi_config=str(config), s3multi_access="ROOT", s3multi_secret="root-secret"
        )
        yield tctx, addon


def signed_flow(
    method: str,
    path: str,
    secret: str = "root-secret",
    body: bytes = b"",
    host: str = PROXY_HOST,
    access: str = "ROOT",
    headers: tuple[tuple[str, str], ...] = (),
) -> http.HTTPFlow:
    """A request as a client sends it, signed by botocore (for the root keys by default)."""
    request = AWSRequest(method=method, url=f"http://{host}{path}", data=body)
    request.headers["Host"] = host
    for name, value in headers:
        request.headers[name] = value
    S3SigV4Auth(Credentials(access, secret), "s3", "us-east-1").add_auth(request)
    fields = [(k.encode(), str(v).encode()) for k, v in request.headers.items()]
    if body:
        fields.append((b"Content-Length", str(len(body)).encode()))
    treq = tutils.treq(
        method=method.encode(), path=path.encode(), headers=http.Headers(fields), content=body
    )
    return reverse_flow(treq)


def reverse_flow(request: http.Request) -> http.HTTPFlow:
    """A flow as the proxy sees it as an S3 endpoint (reverse mode)."""
    flow = tflow.tflow(req=request)
    flow.client_conn.proxy_mode = ProxyMode.parse("reverse:http://127.0.0.1:1")
    return flow


def exchange(flow: http.HTTPFlow) -> Exchange:
    policy = policy_of(flow)
    assert isinstance(policy, Exchange), "the addon did not forward the flow"
    return policy


def refusal(flow: http.HTTPFlow) -> http.Response:
    policy = policy_of(flow)
    assert isinstance(policy, AnswerInstead), "the addon did not refuse the flow"
    return policy.response


def answer(flow: http.HTTPFlow, status: int, body: bytes = b"", **headers: str):
    """The upstream's answer arriving for `flow`: what the policy decides at its headers."""
    flow.response = http.Response.make(status, body, headers)
    return run(exchange(flow).response_headers, flow)


def s3_404(code: str) -> bytes:
    return f"<Error><Code>{code}</Code></Error>".encode()


def test_bad_config_is_an_options_error_without_secrets(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"backends": [{"nmae": "x", "access": "AK", "secret": "s3cr3t-v"}]}))
    addon = load_addon()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError) as raised:
        tctx.configure(
            addon, s3multi_config=str(bad), s3multi_access="ROOT", s3multi_secret="root-secret"
        )
    assert "unknown field 'nmae'" in str(raised.value)
    assert "s3cr3t-v" not in str(raised.value)


def test_an_option_update_reloads_and_a_bad_config_keeps_the_running_one(
    config: Path, tmp_path: Path
):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"backends": [{"name": "solo", "access": "AK", "secret": "SK"}]}))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    addon = load_addon()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon, s3multi_config=str(config), s3multi_access="ROOT", s3multi_secret="root-secret"
        )
        assert [b.name for b in addon.router.backends] == ["hot", "warm"]
        tctx.configure(addon, s3multi_config=str(one))
        assert [b.name for b in addon.router.backends] == ["solo"]
        with pytest.raises(exceptions.OptionsError, match="invalid JSON"):
            tctx.configure(addon, s3multi_config=str(bad))
        # mitmproxy put the option back, and the addon still serves with the file it names.
        assert tctx.options.s3multi_config == str(one)
        assert [b.name for b in addon.router.backends] == ["solo"]


def test_the_secret_from_the_environment_is_never_an_option_value(config: Path):
    """Option values show in `--options` and mitmweb's options page."""
    addon = load_addon()
    variables = {"ROOT_ACCESS_KEY_ID": "ROOT", "ROOT_SECRET_ACCESS_KEY": "root-secret"}
    with mock.patch.dict("os.environ", variables), taddons.context(addon) as tctx:
        tctx.configure(addon, s3multi_config=str(config))
        assert addon.router is not None  # configured from the variables
        assert tctx.options.s3multi_secret == "" and tctx.options.s3multi_access == ""
        assert all("root-secret" not in str(o.default) for o in tctx.options._options.values())
        flow = signed_flow("GET", "/bkt/k")
        run(addon.requestheaders, flow)
        assert exchange(flow)


def test_signed_read_goes_to_the_primary_signed_with_its_keys(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/a%20b.txt?x-id=GetObject")
    run(addon.requestheaders, flow)

    assert run(exchange(flow).before_connect, flow) is None
    assert (flow.request.scheme, flow.request.host, flow.request.port) == ("http", "10.0.0.1", 9000)
    assert flow.request.host_header == "10.0.0.1:9000"
    assert flow.request.path == "/bkt/a%20b.txt?x-id=GetObject"
    assert flow.request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKHOT/")


def test_unsigned_request_is_answered_here_and_never_routed(tctx):
    tctx, addon = tctx
    flow = reverse_flow(tutils.treq(method=b"PUT", path=b"/bkt/k", host="proxy", port=7070))
    run(addon.requestheaders, flow)

    answer = refusal(flow)  # sent instead of connecting anywhere
    assert answer.status_code == 403
    assert b"<Code>AccessDenied</Code>" in answer.content
    assert b"<Resource>/bkt/k</Resource>" in answer.content
    assert flow.response is None  # set here, mitmproxy would read the whole body first
    assert flow.request.stream is True
    assert flow.comment == "refused: AccessDenied"


def test_a_request_the_proxy_answers_shows_its_address_not_the_reverse_placeholder(tctx):
    """Flows (mitmweb, `-w`) and mitmdump's lines show where the client sent the request."""
    tctx, addon = tctx
    unsigned = tutils.treq(method=b"GET", path=b"/bkt/k", host="127.0.0.1", port=1)
    unsigned.host_header = "s3.example.com:7070"
    listing = signed_flow("GET", "/")  # ListBuckets: merged by the proxy
    listing.request.host, listing.request.port = "127.0.0.1", 1
    for flow in (reverse_flow(unsigned), listing):
        flow.client_conn.sockname = ("192.0.2.7", 7070)
        run(addon.requestheaders, flow)
        assert (flow.request.host, flow.request.port) == ("192.0.2.7", 7070)
        assert "127.0.0.1:1" not in flow.request.url
    assert unsigned.host_header == "s3.example.com:7070"  # what the client sent stays


def test_a_refused_virtual_hosted_request_names_bucket_and_key(tctx):
    tctx, addon = tctx
    tctx.configure(addon, s3multi_domain="s3.example.com")
    flow = signed_flow("GET", "/some/key.txt", secret="guess", host="bkt.s3.example.com")
    run(addon.requestheaders, flow)
    assert b"<Resource>/bkt/some/key.txt</Resource>" in refusal(flow).content


def test_wrong_secret_is_signature_does_not_match(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k", secret="guess")
    run(addon.requestheaders, flow)
    assert refusal(flow).status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in refusal(flow).content


def test_a_small_body_that_does_not_match_its_hash_is_refused_in_the_request_hook(tctx):
    tctx, addon = tctx
    flow = signed_flow("PUT", "/bkt/k", body=b"signed body")
    run(addon.requestheaders, flow)
    assert flow.request.stream is False  # small: read whole, then checked
    flow.request.content = b"other body!"
    run(addon.request, flow)
    assert flow.response is not None and flow.response.status_code == 400
    assert b"<Code>XAmzContentSHA256Mismatch</Code>" in flow.response.content
    run(addon.response, flow)
    assert "hot refused: XAmzContentSHA256Mismatch" in flow.comment


def test_a_404_to_get_object_asks_for_its_body_then_the_next_backend(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, flow)
    assert isinstance(answer(flow, 404), ReadBody)
    assert run(exchange(flow).response_body, flow, s3_404("NoSuchKey")) is RETRY
    assert (flow.request.scheme, flow.request.host, flow.request.port) == (
        "https",
        "warm.example",
        443,
    )
    assert "Credential=AKWARM/" in flow.request.headers["Authorization"]


def test_a_head_404_asks_the_next_backend_at_once(tctx):
    tctx, addon = tctx
    flow = signed_flow("HEAD", "/bkt/k")
    run(addon.requestheaders, flow)
    assert answer(flow, 404) is RETRY
    assert flow.request.host == "warm.example"


def test_a_sub_resource_404_is_answered_without_fallback(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt?tagging")
    run(addon.requestheaders, flow)
    assert isinstance(answer(flow, 404), ReadBody)
    assert run(exchange(flow).response_body, flow, s3_404("NoSuchTagSet")) is PASS
    run(addon.response, flow)
    assert flow.request.host == "10.0.0.1"
    assert flow.comment.endswith("answered by hot")


def test_writes_never_fall_back(tctx):
    tctx, addon = tctx
    flow = signed_flow("DELETE", "/bkt/k")
    run(addon.requestheaders, flow)
    assert answer(flow, 404, s3_404("NoSuchKey")) is PASS
    assert flow.request.host == "10.0.0.1"


def test_large_answers_stream_and_small_ones_pass_whole(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, flow)
    flow.response = http.Response.make(200)
    flow.response.headers["Content-Length"] = str(10 * 1024 * 1024)  # headers only, as they come
    run(addon.responseheaders, flow)
    relay = flow.response.stream
    assert callable(relay) and relay(b"piece") == b"piece"  # streamed, its progress watched
    flow.response = http.Response.make(200, b"small", {})
    run(addon.responseheaders, flow)
    assert flow.response.stream is False


def test_unreachable_primary_becomes_an_s3_503(tctx):
    tctx, addon = tctx
    flow = signed_flow("DELETE", "/bkt/k")
    run(addon.requestheaders, flow)
    response = run(exchange(flow).connect_failed, flow, "Connect call failed")
    assert isinstance(response, http.Response)
    assert response.status_code == 503
    assert b"<Code>ServiceUnavailable</Code>" in response.content
    assert b"Backend hot is unreachable." in response.content
    assert response.headers["x-amz-request-id"]


def test_an_unreachable_fallback_is_skipped(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, flow)
    answer(flow, 404)
    run(exchange(flow).response_body, flow, s3_404("NoSuchKey"))
    response = run(exchange(flow).connect_failed, flow, "refused")
    assert isinstance(response, http.Response)  # the last one: not found anywhere
    assert response.status_code == 404 and b"<Code>NoSuchKey</Code>" in response.content


def test_a_refused_connection_marks_the_backend_down_and_requests_skip_it(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, flow)
    answer(flow, 404)
    run(exchange(flow).response_body, flow, s3_404("NoSuchKey"))
    run(exchange(flow).connect_failed, flow, "[Errno 111] Connect call failed")
    assert addon.router.health.down() == {"warm"}  # refused: at once
    again = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, again)
    answer(again, 404)
    response = run(exchange(again).response_body, again, s3_404("NoSuchKey"))
    assert isinstance(response, http.Response) and response.status_code == 404  # not tried
    assert "warm down (skipped)" in exchange(again).summary()


def test_a_timed_out_connection_counts_but_does_not_mark_at_once(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, flow)
    answer(flow, 404)
    run(exchange(flow).response_body, flow, s3_404("NoSuchKey"))
    run(exchange(flow).connect_failed, flow, "no connection within 5s")  # ConnectTimeouts'
    assert addon.router.health.down() == frozenset()


def test_with_the_primary_marked_down_a_write_is_answered_without_connecting(tctx):
    tctx, addon = tctx
    addon.router.health.failed("hot", "[Errno 111] Connect call failed", at_once=True)
    flow = signed_flow("PUT", "/bkt/k", body=b"x" * 10)
    run(addon.requestheaders, flow)
    response = run(exchange(flow).before_connect, flow)
    assert isinstance(response, http.Response) and response.status_code == 503
    assert b"<Message>Backend hot is down.</Message>" in response.content
    assert flow.request.stream is True  # its body is never read
    assert exchange(flow).summary() == "PutObject /bkt/k via [hot down (skipped)] answered by proxy"
    # A read goes to the fallback (no metaBucket: deletes never stick, its copy may serve).
    read = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, read)
    assert run(exchange(read).before_connect, read) is None
    assert read.request.host == "warm.example"


def test_as_a_sidecar_only_s3_hosts_are_touched(tctx):
    tctx, addon = tctx
    tctx.configure(addon, s3multi_domain="s3.amazonaws.com")
    other = tflow.tflow(req=tutils.treq(host="example.org", port=80, path=b"/anything"))
    run(addon.requestheaders, other)
    assert other.request.host == "example.org" and policy_of(other) is None

    s3 = tflow.tflow(req=tutils.treq(host="bkt.s3.amazonaws.com", port=443, path=b"/k"))
    run(addon.requestheaders, s3)
    assert refusal(s3).status_code == 403  # unsigned: refused


def served_by_the_fallback(addon) -> http.HTTPFlow:
    """A GET the primary answers 404 and the fallback 200, through every hook to its end."""
    flow = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, flow)
    answer(flow, 404)
    assert run(exchange(flow).response_body, flow, s3_404("NoSuchKey")) is RETRY
    assert answer(flow, 200, b"found") is PASS
    run(addon.response, flow)
    return flow


def test_the_flow_comment_names_every_backend_tried(tctx):
    """What mitmweb shows for a flow: the backends tried, their answers, the one that answered."""
    tctx, addon = tctx
    flow = served_by_the_fallback(addon)
    assert flow.comment.startswith("GetObject /bkt/k via [hot 404 ")
    assert ", warm 200 " in flow.comment
    assert flow.comment.endswith("answered by warm")


def test_nothing_keeps_a_flow_alive_once_it_is_done(tctx):
    """Per-flow state lives in registries keyed weakly by the flow: anything in it that held
    the flow strongly (a deadline did) would keep every flow ever served."""
    tctx, addon = tctx
    gone = weakref.ref(served_by_the_fallback(addon))
    gc.collect()
    assert gone() is None


def test_a_failed_flow_still_gets_its_comment(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, flow)
    answer(flow, 200)
    flow.error = Error("peer closed connection")
    run(addon.error, flow)
    assert flow.comment.endswith("answered by hot; failed: peer closed connection")


def test_a_bug_of_ours_refuses_the_request_instead_of_relaying_it(tctx, monkeypatch):
    tctx, addon = tctx

    def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(addon.router, "start", broken)
    flow = signed_flow("GET", "/bkt/k")
    run(addon.requestheaders, flow)
    response = refusal(flow)
    assert response.status_code == 500 and b"<Code>InternalError</Code>" in response.content
    assert flow.request.host == "address"  # never aimed at a backend


# --- gateway users --------------------------------------------------------------------------

READER_SECRET = "reader-secret-never-logged"


def users_file(path: Path, role: str, **fields: object) -> Path:
    reader = {"access": "READER", "secret": READER_SECRET, "role": role, **fields}
    path.write_text(json.dumps({"users": [reader]}))
    return path


def as_reader(method: str, path: str, **kw) -> http.HTTPFlow:
    return signed_flow(method, path, secret=READER_SECRET, access="READER", **kw)


@pytest.fixture
def with_users(tctx, tmp_path: Path):
    tctx, addon = tctx
    users = users_file(tmp_path / "users.json", "readonly")
    tctx.configure(addon, s3multi_users=str(users))
    return tctx, addon, users


def test_a_readonly_user_reads_through_the_backends_keys_and_is_refused_a_write(with_users):
    _, addon, _ = with_users
    read = as_reader("GET", "/bkt/k")
    run(addon.requestheaders, read)
    run(exchange(read).before_connect, read)
    assert "Credential=AKHOT/" in read.request.headers["Authorization"]  # never the user's

    write = as_reader("PUT", "/bkt/k", body=b"not allowed")
    run(addon.requestheaders, write)
    answer = refusal(write)  # answered instead of connecting, before the body is read
    assert answer.status_code == 403
    assert b"<Code>AccessDenied</Code>" in answer.content
    assert b"READER (readonly) may not write bucket bkt." in answer.content
    assert write.request.stream is True and write.request.host != "10.0.0.1"


def test_setting_the_users_option_again_reloads_the_file(with_users):
    tctx, addon, users = with_users
    users_file(users, "user", buckets=["bkt"])
    tctx.configure(addon, s3multi_users=str(users))  # the same path, set again
    write = as_reader("PUT", "/bkt/k", body=b"allowed now")
    run(addon.requestheaders, write)
    assert exchange(write)
    elsewhere = as_reader("GET", "/other/k")
    run(addon.requestheaders, elsewhere)
    assert b"may not read bucket other." in refusal(elsewhere).content


def test_a_bad_users_file_is_refused_and_the_users_in_use_stay(with_users, caplog):
    tctx, addon, users = with_users
    users.write_text(json.dumps({"users": [{"access": "READER", "secret": READER_SECRET}]}))
    with pytest.raises(exceptions.OptionsError) as raised:
        tctx.configure(addon, s3multi_users=str(users))
    assert str(raised.value) == f'{users}: users[0] ("READER"): role: is required'
    read = as_reader("GET", "/bkt/k")
    run(addon.requestheaders, read)
    assert exchange(read)  # still the readonly user
    addon.hangup()  # what SIGHUP calls: the same, logged
    assert f'reload refused, the running config stays: {users}: users[0] ("READER")' in caplog.text
    assert READER_SECRET not in caplog.text


def test_a_bad_users_file_at_start_is_an_options_error_without_secrets(config, tmp_path):
    users = users_file(tmp_path / "users.json", READER_SECRET)  # the secret as the role
    addon = load_addon()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError) as raised:
        tctx.configure(
            addon,
            s3multi_config=str(config),
            s3multi_access="ROOT",
            s3multi_secret="root-secret",
            s3multi_users=str(users),
        )
    assert "role: must be one of admin, user, readonly, got '***'" in str(raised.value)
    assert READER_SECRET not in str(raised.value)


def test_a_users_object_must_be_in_the_primarys_meta_bucket(tctx):
    tctx, addon = tctx
    with pytest.raises(exceptions.OptionsError) as raised:
        tctx.configure(addon, s3multi_users="s3://somewhere/users.yaml")
    assert str(raised.value) == (
        "users: s3://somewhere/users.yaml: must be an object in the primary's metaBucket, "
        "s3://<metaBucket>/<key>, where no client can read it"
    )


def test_a_copy_needs_read_on_its_source(with_users, tmp_path):
    tctx, addon, users = with_users
    users_file(users, "user", buckets=["bkt"])
    tctx.configure(addon, s3multi_users=str(users))
    copy = as_reader("PUT", "/bkt/copy", headers=(("x-amz-copy-source", "/other/k"),))
    run(addon.requestheaders, copy)
    assert b"may not read bucket other." in refusal(copy).content
    allowed = as_reader("PUT", "/bkt/copy", headers=(("x-amz-copy-source", "bkt/k"),))
    run(addon.requestheaders, allowed)
    assert exchange(allowed)
    nameless = as_reader("PUT", "/bkt/copy", headers=(("x-amz-copy-source", "/bkt"),))
    run(addon.requestheaders, nameless)
    assert b"<Code>InvalidArgument</Code>" in refusal(nameless).content


def test_mitmdump_users_are_told_when_block_global_would_refuse_public_clients():
    """mitmdump runs mitmproxy's Block addon; the s3-multi command's master does not."""
    from mitmproxy.addons.block import Block

    from addon.mitm.master import lean_master
    from addon.ops.public_clients import refused_publicly

    with taddons.context(Block()) as tctx:
        tctx.configure(tctx.master.addons.get("block"), listen_host="")
        assert "--set block_global=false" in (refused_publicly(tctx.options) or "")
        tctx.configure(tctx.master.addons.get("block"), listen_host="127.0.0.1")
        assert refused_publicly(tctx.options) is None  # loopback clients only
        tctx.configure(tctx.master.addons.get("block"), listen_host="", block_global=False)
        assert refused_publicly(tctx.options) is None

    async def command_options():
        from mitmproxy.options import Options

        return lean_master(Options(listen_host=""), object()).options

    assert refused_publicly(asyncio.run(command_options())) is None
