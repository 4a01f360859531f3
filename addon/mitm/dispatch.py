"""Cached hook dispatch: each event's hooks looked up once, not on every event of every request.

mitmproxy's `AddonManager.trigger_event` walks, for each event, every addon and its sub-addons,
looks the hook up with getattr, builds the hook's arguments with `dataclasses.fields` per call
and enters the `safecall` context manager per top-level addon; `handle_lifecycle` then does it
all again for an `update` event after each of a request's four flow events. `cache_hooks`
turns one master's addon manager into a `CachedAddonManager`, which keeps, per event name, the
top-level addons that handle it with their bound hooks, built on first use and dropped whenever
the addons may have changed (add, remove, register, clear, and after every `configure`, where
mitmproxy's ScriptLoader reorders its scripts). Only that manager changes: other masters in the
process (tests) keep mitmproxy's own.

What stays as mitmproxy does it (tests/unit/mitm/test_dispatch.py runs each case on both): the
hooks' order, sub-addons after their parent; an exception in a hook is logged as
"Addon error: ..." and skips the rest of that top-level addon's subtree for this event, the next
addon still runs; AddonHalt stops the chain; OptionsError propagates; a hook's awaitable is
awaited; a hook attribute that is not callable is an error when reached (a module is skipped);
`update` follows a flow event only, and only when some addon handles it. One difference: the
arguments are read from the event once per event, not once per hook; no hook of ours or
mitmproxy's replaces a field of the event it is given.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from mitmproxy import addonmanager, exceptions, flow, hooks

_Entries = tuple[tuple[Callable[..., Any], ...], ...]  # per top-level addon, its bound hooks
_FIELDS: dict[type, tuple[str, ...]] = {}
_CACHE = "_s3multi_hooks"  # the manager's attribute that holds the cache


def cache_hooks(manager: addonmanager.AddonManager) -> None:
    """Dispatch `manager`'s events through the cache from now on (idempotent)."""
    manager.__class__ = CachedAddonManager


def _args(event: hooks.Hook) -> list[Any]:
    """`event.args()`, with the field names looked up once per hook class."""
    names = _FIELDS.get(type(event))
    if names is None:
        names = _FIELDS[type(event)] = tuple(f.name for f in fields(event))  # type: ignore[arg-type]
    return [getattr(event, name) for name in names]


def _not_callable(name: str, addon: object) -> Callable[..., Any]:
    def fail(*_: object) -> None:
        raise exceptions.AddonManagerError(f"Addon handler {name} ({addon}) not callable")

    return fail


def _log_addon_error(error: Exception) -> None:
    tb = addonmanager.cut_traceback(sys.exc_info()[2], "_dispatch")
    addonmanager.logger.error(f"Addon error: {error}", exc_info=(type(error), error, tb))


class CachedAddonManager(addonmanager.AddonManager):
    """mitmproxy's AddonManager with each event's hooks kept (see the module's docstring)."""

    def _entries(self, name: str) -> _Entries:
        cache: dict[str, _Entries] | None = self.__dict__.get(_CACHE)
        if cache is None:
            cache = self.__dict__[_CACHE] = {}
        entries = cache.get(name)
        if entries is None:
            entries = cache[name] = self._build(name)
        return entries

    def _build(self, name: str) -> _Entries:
        """As `_iter_hooks` finds them, per top-level addon of the chain."""
        entries = []
        for top in self.chain:
            found = []
            for addon in addonmanager.traverse([top]):
                func = getattr(addon, name, None)
                if not func or isinstance(func, types.ModuleType):
                    continue
                found.append(func if callable(func) else _not_callable(name, addon))
            if found:
                entries.append(tuple(found))
        return tuple(entries)

    def _forget(self) -> None:
        self.__dict__.pop(_CACHE, None)

    async def _dispatch(self, entries: _Entries, args: Sequence[Any]) -> None:
        """Each top-level addon's hooks in one try, as `safecall` around `invoke_addon`."""
        for funcs in entries:
            try:
                for func in funcs:
                    result = func(*args)
                    if result is not None and inspect.isawaitable(result):
                        await result
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception as e:
                _log_addon_error(e)

    async def trigger_event(self, event: hooks.Hook) -> None:
        try:
            entries = self._entries(event.name)
            if entries:
                await self._dispatch(entries, _args(event))
        finally:
            if event.name == "configure":
                self._forget()

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        args = _args(event)
        entries = self._entries(event.name)
        if entries:
            await self._dispatch(entries, args)
        if isinstance(args[0], flow.Flow):
            updates = self._entries("update")
            if updates:
                await self._dispatch(updates, [[args[0]]])

    # What may change the addons, or their order: the cache is built again after it.

    def register(self, addon: Any) -> Any:
        try:
            return super().register(addon)
        finally:
            self._forget()

    def add(self, *addons: Any) -> None:
        try:
            super().add(*addons)
        finally:
            self._forget()

    def remove(self, addon: Any) -> None:
        try:
            super().remove(addon)
        finally:
            self._forget()

    def clear(self) -> None:
        try:
            super().clear()
        finally:
            self._forget()

    def trigger(self, event: hooks.Hook) -> None:
        try:
            super().trigger(event)
        finally:
            if event.name == "configure":
                self._forget()
