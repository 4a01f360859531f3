"""The addon's hooks, driven with mitmproxy's own test helpers (no network)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons.script import load_script
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils

from addon import sigv4, upstream_control
from addon.errors import S3Error

ROOT = Path(__file__).resolve().parent.parent
PROXY_HOST = "127.0.0.1:7070"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    backends = [
        {
            "name": "hot",
            "access": "AKHOT",
            "secret": "hot-secret",
            "endpoint": "http://10.0.0.1:9000",
        },
        {
            "name": "warm",
            "access": "AKWARM",
            "secret": "warm-secret",
            "endpoint": "https://warm.example",
        },
    ]
    for b in backends:
        b["usePathStyle"] = True
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"backends": backends}))
    return path


def load_addon():
    """The addon as `mitmdump -s addon/multi.py` loads it."""
    return load_script(str(ROOT / "addon" / "multi.py")).addons[0]


@pytest.fixture
def tctx(config: Path):
    addon = load_addon()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon,
            s3multi_config=str(config),
            s3multi_access="ROOT",
            s3multi_secret="root-secret",
        )
        yield tctx, addon


def signed_flow(method: str, path: str, secret: str = "root-secret") -> http.HTTPFlow:
    raw_path, _, query = path.partition("?")
    headers = [("x-amz-content-sha256", EMPTY_SHA256)]
    auth = sigv4.sign_headers(
        access="ROOT",
        secret=secret,
        region="us-east-1",
        method=method,
        host=PROXY_HOST,
        path=sigv4.canonical_path(raw_path),
        query=sigv4.canonical_query(sigv4.query_pairs(query)),
        headers=headers,
        signed_headers=["x-amz-content-sha256"],
        payload_hash=EMPTY_SHA256,
    )
    # `auth` carries X-Amz-Date, X-Amz-Content-SHA256 and Authorization.
    fields = [(b"Host", PROXY_HOST.encode())] + [(k.encode(), v.encode()) for k, v in auth.items()]
    request = tutils.treq(
        method=method.encode(), path=path.encode(), headers=http.Headers(fields), content=b""
    )
    return reverse_flow(request)


def reverse_flow(request: http.Request) -> http.HTTPFlow:
    """A flow as the proxy sees it as an S3 endpoint (reverse mode)."""
    flow = tflow.tflow(req=request)
    flow.client_conn.proxy_mode = ProxyMode.parse("reverse:http://127.0.0.1:1")
    return flow


def control(flow: http.HTTPFlow) -> upstream_control.Control:
    found = upstream_control.control_of(flow)
    assert found is not None, "the addon did not take the flow"
    return found


def take_resend(flow: http.HTTPFlow) -> bool:
    """What the wrapped send_response does: read the resend request, once."""
    resend, control(flow).resend = control(flow).resend, False
    return resend


def s3_404(code: str) -> http.Response:
    return http.Response.make(
        404, f"<Error><Code>{code}</Code></Error>".encode(), {"Content-Type": "application/xml"}
    )


def test_bad_config_is_an_options_error_without_secrets(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"backends": [{"name": "x", "access": "AK", "secret": "s3cr3t-v"}]}))
    bad.write_text(bad.read_text().replace('"name"', '"nmae"'))
    addon = load_addon()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError) as raised:
        tctx.configure(
            addon, s3multi_config=str(bad), s3multi_access="ROOT", s3multi_secret="root-secret"
        )
    assert "unknown field 'nmae'" in str(raised.value)
    assert "s3cr3t-v" not in str(raised.value)


def test_signed_read_goes_to_the_primary_signed_with_its_keys(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/a%20b.txt?x-id=GetObject")
    addon.requestheaders(flow)

    assert flow.response is None and control(flow).answer is None
    assert (flow.request.scheme, flow.request.host, flow.request.port) == ("http", "10.0.0.1", 9000)
    assert flow.request.host_header == "10.0.0.1:9000"
    assert flow.request.path == "/bkt/a%20b.txt?x-id=GetObject"
    assert flow.request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKHOT/")
    assert upstream_control.control_of(flow) is not None  # managed by the wrapped internals


def test_unsigned_request_is_answered_here_and_never_routed(tctx):
    tctx, addon = tctx
    flow = reverse_flow(tutils.treq(method=b"PUT", path=b"/bkt/k", host="proxy", port=7070))
    addon.requestheaders(flow)

    answer = control(flow).answer  # sent instead of connecting anywhere
    assert answer.status_code == 403
    assert b"<Code>AccessDenied</Code>" in answer.content
    assert flow.response is None  # set here, mitmproxy would read the whole body first
    assert flow.request.stream is True
    assert flow.request.host == "proxy"


def test_wrong_secret_is_signature_does_not_match(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k", secret="guess")
    addon.requestheaders(flow)
    answer = control(flow).answer
    assert answer.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in answer.content


def test_a_404_to_get_object_falls_back_at_the_headers(tctx):
    """GetObject's 404 can only be NoSuchKey or NoSuchBucket: no need to wait for its body."""
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    addon.requestheaders(flow)
    flow.response = http.Response.make(404)
    addon.responseheaders(flow)

    assert take_resend(flow)
    assert (flow.request.scheme, flow.request.host, flow.request.port) == (
        "https",
        "warm.example",
        443,
    )
    assert "Credential=AKWARM/" in flow.request.headers["Authorization"]


def test_a_sub_resource_read_falls_back_on_no_such_key_once_the_body_says_so(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k?tagging")
    addon.requestheaders(flow)
    flow.response = s3_404("NoSuchKey")
    addon.responseheaders(flow)
    assert not control(flow).resend
    assert flow.response.stream is False  # the 404 is read whole, to decide on it
    addon.response(flow)

    assert take_resend(flow)
    assert flow.request.host == "warm.example"


def test_a_sub_resource_404_is_answered_without_fallback(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt?tagging")
    addon.requestheaders(flow)
    flow.response = s3_404("NoSuchTagSet")
    addon.responseheaders(flow)
    addon.response(flow)

    assert not control(flow).resend
    assert flow.request.host == "10.0.0.1"
    assert "answered by hot" in flow.comment


def test_writes_never_fall_back(tctx):
    tctx, addon = tctx
    flow = signed_flow("DELETE", "/bkt/k")
    addon.requestheaders(flow)
    flow.response = s3_404("NoSuchKey")
    addon.responseheaders(flow)
    addon.response(flow)
    assert not control(flow).resend
    assert flow.request.host == "10.0.0.1"


def test_large_answers_stream_and_small_ones_pass_whole(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    addon.requestheaders(flow)
    flow.response = http.Response.make(200)
    flow.response.headers["Content-Length"] = str(10 * 1024 * 1024)  # headers only, as they come
    addon.responseheaders(flow)
    assert flow.response.stream is True
    flow.response = http.Response.make(200, b"small", {})
    addon.responseheaders(flow)
    assert flow.response.stream is False


def test_unreachable_primary_becomes_an_s3_503(tctx):
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    addon.requestheaders(flow)
    control(flow).unreachable = "Connect call failed"
    flow.response = http.Response.make(502)
    addon.response(flow)

    assert flow.response.status_code == 503
    assert b"<Code>ServiceUnavailable</Code>" in flow.response.content
    assert flow.response.headers["x-amz-request-id"]


def test_as_a_sidecar_only_s3_hosts_are_touched(tctx):
    tctx, addon = tctx
    tctx.configure(addon, s3multi_domain="s3.amazonaws.com")
    other = tflow.tflow(req=tutils.treq(host="example.org", port=80, path=b"/anything"))
    addon.requestheaders(other)
    assert other.request.host == "example.org" and upstream_control.control_of(other) is None

    s3 = tflow.tflow(req=tutils.treq(host="bkt.s3.amazonaws.com", port=443, path=b"/k"))
    addon.requestheaders(s3)
    assert control(s3).answer.status_code == 403  # unsigned: refused


def test_error_responses_to_head_have_no_body():
    from addon.router import error_response

    response = error_response(S3Error("AccessDenied"), "HEAD", "/b", "RID")
    assert (response.status_code, response.content) == (403, b"")


def test_the_flow_comment_names_every_backend_tried(tctx):
    """What mitmweb shows for a flow: the backends tried, their answers, the one that answered."""
    tctx, addon = tctx
    flow = signed_flow("GET", "/bkt/k")
    addon.requestheaders(flow)
    flow.response = http.Response.make(404)
    addon.responseheaders(flow)
    assert take_resend(flow)
    flow.response = http.Response.make(200, b"found")  # the resent request's answer
    addon.responseheaders(flow)
    addon.response(flow)
    assert flow.comment.startswith("GetObject /bkt/k via [hot 404 ")
    assert ", warm 200 " in flow.comment
    assert flow.comment.endswith("answered by warm")


def test_a_bug_of_ours_refuses_the_request_instead_of_relaying_it(tctx, monkeypatch):
    tctx, addon = tctx

    def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(addon.router, "start", broken)
    flow = signed_flow("GET", "/bkt/k")
    addon.requestheaders(flow)
    answer = control(flow).answer
    assert answer.status_code == 500 and b"<Code>InternalError</Code>" in answer.content
    assert flow.request.host == "address"  # never aimed at a backend
