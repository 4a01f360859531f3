"""Cached dispatch keeps mitmproxy's dispatch semantics: each case runs on mitmproxy's own
AddonManager and on the cached one, and must give the same."""

from __future__ import annotations

import asyncio
import logging
import types

import pytest
from mitmproxy import exceptions, hooks, http, master
from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHook
from mitmproxy.proxy.server_hooks import ClientConnectedHook
from mitmproxy.test import tflow

from addon.mitm import dispatch


class Rec:
    """An addon that writes down each hook it runs, and fails as told."""

    def __init__(self, name, log, *, fail=False, halt=False, options_error=False, late=False):
        self.name, self.log = name, log
        self.fail, self.halt, self.options_error = fail, halt, options_error
        if late:
            self.request = self._late_request

    def request(self, flow):
        self.log.append(self.name)
        if self.fail:
            raise ValueError(f"boom in {self.name}")
        if self.halt:
            raise exceptions.AddonHalt()
        if self.options_error:
            raise exceptions.OptionsError("bad")

    async def _late_request(self, flow):
        await asyncio.sleep(0)
        self.log.append(self.name + " (awaited)")

    def update(self, flows):
        self.log.append(f"update {self.name}")


class Parent(Rec):
    def __init__(self, name, log, children, **kw):
        super().__init__(name, log, **kw)
        self.addons = children


@pytest.fixture(params=["mitmproxy's", "cached"])
def new_master(request):
    def make() -> master.Master:
        made = master.Master(None)
        if request.param == "cached":
            dispatch.cache_hooks(made.addons)
        return made

    return make


def run(new_master, build, event=None):
    async def main():
        m = new_master()
        log: list[str] = []
        build(m, log)
        await m.addons.handle_lifecycle(event or HttpRequestHook(tflow.tflow()))
        return log

    return asyncio.run(main())


def test_hooks_run_in_order_children_after_their_parent_then_update(new_master):
    def build(m, log):
        m.addons.add(Rec("a", log), Parent("p", log, [Rec("c1", log), Rec("c2", log)]))
        m.addons.add(Rec("z", log))

    order = ["a", "p", "c1", "c2", "z"]
    assert run(new_master, build) == [*order, *(f"update {n}" for n in order)]


def test_an_error_skips_the_rest_of_that_addon_only_and_is_logged(new_master, caplog):
    def build(m, log):
        m.addons.add(Parent("p", log, [Rec("c1", log)], fail=True), Rec("z", log))

    with caplog.at_level(logging.ERROR):
        log = run(new_master, build)
    assert log[:2] == ["p", "z"]
    assert any("Addon error: boom in p" in r.getMessage() for r in caplog.records)


def test_addon_halt_stops_the_chain(new_master):
    def build(m, log):
        m.addons.add(Rec("a", log, halt=True), Rec("z", log))

    log = run(new_master, build)
    assert log[0] == "a" and "z" not in log


def test_options_error_propagates(new_master):
    def build(m, log):
        m.addons.add(Rec("a", log, options_error=True), Rec("z", log))

    with pytest.raises(exceptions.OptionsError):
        run(new_master, build)


def test_an_awaitable_hook_is_awaited_before_the_next_addon(new_master):
    def build(m, log):
        m.addons.add(Rec("a", log, late=True), Rec("z", log))

    assert run(new_master, build)[:2] == ["a (awaited)", "z"]


def test_a_module_named_like_a_hook_is_skipped_and_anything_else_not_callable_is_an_error(
    new_master, caplog
):
    def build(m, log):
        skipped, broken = Rec("module", log), Rec("broken", log)
        skipped.request = types.ModuleType("request")
        broken.request = 42
        m.addons.add(skipped, broken, Rec("z", log))

    with caplog.at_level(logging.ERROR):
        log = run(new_master, build)
    assert log[0] == "z"
    assert any("not callable" in r.getMessage() for r in caplog.records)


def test_addons_added_removed_or_registered_later_are_seen(new_master):
    async def main():
        m = new_master()
        log: list[str] = []
        flow = tflow.tflow()
        a = Rec("a", log)
        m.addons.add(a)
        await m.addons.trigger_event(HttpRequestHook(flow))
        m.addons.add(Rec("b", log))
        await m.addons.trigger_event(HttpRequestHook(flow))
        m.addons.remove(a)
        await m.addons.trigger_event(HttpRequestHook(flow))
        parent = Parent("p", log, [])
        m.addons.add(parent)
        late = Rec("late", log)  # a sub-addon registered later, as ScriptLoader does
        parent.addons.append(late)
        m.addons.register(late)
        await m.addons.trigger_event(HttpRequestHook(flow))
        return log

    assert asyncio.run(main()) == ["a", "a", "b", "b", "b", "p", "late"]


def test_a_configure_event_lets_changed_sub_addons_be_seen(new_master):
    async def main():
        m = new_master()
        log: list[str] = []
        parent = Parent("p", log, [])
        m.addons.add(parent)
        flow = tflow.tflow()
        await m.addons.trigger_event(HttpRequestHook(flow))
        parent.addons.append(Rec("reordered", log))  # changed without register (ScriptLoader)
        m.addons.trigger(hooks.ConfigureHook(set()))
        await m.addons.trigger_event(HttpRequestHook(flow))
        parent.addons.append(Rec("again", log))
        await m.addons.trigger_event(hooks.ConfigureHook(set()))
        await m.addons.trigger_event(HttpRequestHook(flow))
        return log

    assert asyncio.run(main()) == ["p", "p", "reordered", "p", "reordered", "again"]


def test_no_update_after_an_event_that_is_not_a_flow_s(new_master):
    def build(m, log):
        m.addons.add(Rec("a", log))

    assert run(new_master, build, ClientConnectedHook(tflow.tclient_conn())) == []


def test_a_hook_gets_the_event_s_arguments(new_master):
    seen = []

    class Answered:
        def response(self, flow):
            seen.append(flow)

    async def main():
        m = new_master()
        m.addons.add(Answered())
        flow = tflow.tflow(resp=True)
        await m.addons.handle_lifecycle(HttpResponseHook(flow))
        return flow

    flow = asyncio.run(main())
    assert seen == [flow] and isinstance(flow, http.HTTPFlow)


def test_only_the_master_it_is_given_dispatches_from_the_cache():
    async def main():
        cached, stock = master.Master(None), master.Master(None)
        dispatch.cache_hooks(cached.addons)
        return type(cached.addons), type(stock.addons)

    cached, stock = asyncio.run(main())
    assert cached is dispatch.CachedAddonManager
    assert stock is not dispatch.CachedAddonManager
