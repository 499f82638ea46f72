"""Registry changes behind add/update/enable/disable/remove: validate the input, then edit the file.

Every check runs before anything is written, so bad input leaves the file as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypedDict

from ollamactl.core import params
from ollamactl.core.errors import InvalidValue, Said, UsageError
from ollamactl.core.paths import Locations
from ollamactl.core.registry import instances as registry
from ollamactl.core.registry.instances import Instance, Registry
from ollamactl.core.registry.regions import Span
from ollamactl.core.registry.urls import derive_id, normalise_url, server_key, validate_id

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
UNSET = object()  # "leave as is", distinct from None ("remove")


@dataclass
class Changes:
    """What `update` should change; every field left UNSET stays as it is."""

    url: Any = UNSET
    name: Any = UNSET
    type: Any = UNSET
    weight: Any = UNSET
    enabled: Any = UNSET
    priority: Any = UNSET  # a whole number or "backup"
    max_inflight: Any = UNSET  # a whole number, or None for unlimited
    api_key_env: Any = UNSET  # a variable name, or None to drop key settings
    api_key: Any = UNSET  # a key value, or None to drop key settings


@dataclass(frozen=True)
class NewInstance:
    """What `add` registers besides the URL, as given (checked by `add` before anything is written)."""

    name: str | None = None  # None: the id
    id: str | None = None  # None: derived from the URL
    type: str = "both"  # chat, embedding or both
    weight: int = 1
    enabled: bool = True
    api_key_env: str | None = None  # the variable holding its key
    api_key: str | None = None  # or the key itself
    priority: int | str = 0  # its tier: lower is preferred, "backup" below every other
    max_inflight: int | None = None  # leases at once (None: unlimited)


class NewInstanceFields(TypedDict, total=False):
    """The keywords `Fleet.add` takes besides `check`, typed for a type checker: NewInstance's
    fields (tests/test_library_types.py holds the two alike)."""

    name: str | None
    id: str | None
    type: str
    weight: int
    enabled: bool
    api_key_env: str | None
    api_key: str | None
    priority: int | str
    max_inflight: int | None


def check_type(kind: str) -> str:
    problem = registry.type_problem(kind)
    if problem:
        raise InvalidValue(("type",), problem)
    return kind


def check_weight(weight: int) -> int:
    problem = registry.weight_problem(weight)
    if problem:
        raise InvalidValue(("weight",), problem)
    return weight


def check_priority(priority: Any) -> int | str:
    """The priority as the registry writes it (a whole number or "backup"); InvalidValue if bad."""
    try:
        tier = registry.priority_value(priority)
    except ValueError as exc:
        raise InvalidValue(("priority",), str(exc), "lower is preferred; `backup` is used only when every other tier"
                           " is out") from None
    return registry.BACKUP if tier == registry.BACKUP_TIER else tier


def check_max_inflight(value: int | None) -> int | None:
    problem = None if value is None else registry.max_inflight_problem(value)
    if problem:
        raise InvalidValue(("max_inflight",), problem,
                           "set it to the server's OLLAMA_NUM_PARALLEL x the models it runs")
    return value


def check_key_source(api_key_env: Any, has_key: bool) -> None:
    """A key is given one way: held in a variable (`api_key_env`) or stored (`api_key`), not both."""
    if api_key_env not in (None, UNSET) and has_key:
        raise InvalidValue(("api_key_env", "api_key"), "conflict", "choose one way to give the key")


def check_key(key: Any) -> str:
    params.text("api_key", key)
    if any(ch.isspace() or not ch.isprintable() for ch in key.strip()):
        raise InvalidValue(("api_key",), "contains spaces or control characters", "pass exactly one key")
    return key.strip()


def check_env_name(name: str) -> str:
    params.text("api_key_env", name)
    if not _ENV_NAME.match(name):
        raise UsageError(f"{name!r} is not an environment variable name", "use letters, digits and '_'")
    return name


def check_name(name: str) -> str:
    params.text("name", name)
    if not name.strip() or any(not ch.isprintable() for ch in name):
        raise UsageError(f"invalid name {name!r}", "use printable text that is not blank")
    return name


def _check_unique(reg: Registry, url: str | None, name: str | None, instance_id: str | None,
                  own_id: str | None = None) -> None:
    for other in reg.instances:
        if other.id == own_id:
            continue
        if url is not None and other.url == url:
            raise UsageError(f"URL {url} is already registered as {other.id!r}",
                             f"use `ollamactl update {other.id}` to change it")
        if url is not None and server_key(other.url) == server_key(url):
            raise UsageError(f"{url} is the same server as {other.url}, already registered as {other.id!r}",
                             f"one server counts once in the rotation; use `ollamactl update {other.id}` to change it")
        if instance_id is not None and instance_id in (other.id, other.name):
            raise UsageError(f"id {instance_id!r} is already taken by instance {other.id!r}",
                             Said("choose another {id}"))
        if name is not None and name in (other.id, other.name):
            raise UsageError(f"name {name!r} is already used by instance {other.id!r}",
                             Said("choose another {name}"))


def add(locations: Locations, url: str, new: NewInstance) -> Instance:
    normalised = normalise_url(params.text("url", url))
    params.flag("enabled", new.enabled)
    check_key_source(new.api_key_env, new.api_key is not None)
    api_key = None if new.api_key is None else check_key(new.api_key)
    check_type(new.type)
    check_weight(new.weight)
    tier = check_priority(new.priority)
    check_max_inflight(new.max_inflight)
    if new.id is not None:
        validate_id(params.text("id", new.id))
    if new.name is not None:
        check_name(new.name)
    if new.api_key_env is not None:
        check_env_name(new.api_key_env)
    with registry.edit(locations, _last_table) as editor:
        reg = editor.registry
        taken = {i.id for i in reg.instances} | {i.name for i in reg.instances}
        new_id = new.id or derive_id(normalised, taken)
        new_name = new.name or new_id
        _check_unique(reg, normalised, None if new.name is None else new_name, new_id)
        editor.append({
            "id": new_id,
            "name": new_name,
            "url": normalised,
            "type": new.type,
            "enabled": new.enabled,
            "weight": new.weight,
            "priority": tier if tier != 0 else None,
            "max_inflight": new.max_inflight,
            "api_key_env": new.api_key_env,
            "api_key": api_key,
            "created_at": registry.now_utc(),
        })
    return editor.registry.find(new_id)


def update(locations: Locations, ref: str, changes: Changes) -> Instance:
    if changes.url is not UNSET:
        changes.url = normalise_url(params.text("url", changes.url))
    if changes.enabled is not UNSET:
        params.flag("enabled", changes.enabled)
    check_key_source(changes.api_key_env, changes.api_key not in (None, UNSET))
    if changes.api_key not in (None, UNSET):
        changes.api_key = check_key(changes.api_key)
    if changes.type is not UNSET:
        check_type(changes.type)
    if changes.weight is not UNSET:
        check_weight(changes.weight)
    if changes.name is not UNSET:
        check_name(changes.name)
    if changes.priority is not UNSET:
        changes.priority = check_priority(changes.priority)
    if changes.max_inflight is not UNSET:
        check_max_inflight(changes.max_inflight)
    if changes.api_key_env not in (UNSET, None):
        check_env_name(changes.api_key_env)
    with registry.edit(locations, lambda reg: _tables([reg.find(ref)], reg)) as editor:
        instance = editor.registry.find(ref)
        _check_unique(
            editor.registry,
            None if changes.url is UNSET else changes.url,  # type: ignore[arg-type]
            None if changes.name is UNSET else changes.name,
            None,
            own_id=instance.id,
        )
        table = editor.table_for(instance.id)
        for key in ("url", "name", "type", "weight", "enabled", "priority"):
            value = getattr(changes, key)
            if value is not UNSET:
                registry.set_value(table, key, value)
        if changes.max_inflight is None and "max_inflight" in table:
            del table["max_inflight"]  # unlimited again
        elif changes.max_inflight not in (UNSET, None):
            registry.set_value(table, "max_inflight", changes.max_inflight)
        if changes.api_key_env is not UNSET or changes.api_key is not UNSET:
            for key in ("api_key_env", "api_key"):
                if key in table:
                    del table[key]
            for key in ("api_key_env", "api_key"):
                value = getattr(changes, key)
                if value not in (UNSET, None):
                    registry.set_value(table, key, value)
    return editor.registry.find(instance.id)


def set_enabled(locations: Locations, refs: list[str], enabled: bool) -> list[Instance]:
    with registry.edit(locations, lambda reg: _tables(resolve_all(reg, refs), reg)) as editor:
        targets = resolve_all(editor.registry, refs)
        for instance in targets:
            registry.set_value(editor.table_for(instance.id), "enabled", enabled)
    return [editor.registry.find(i.id) for i in targets]


def remove(locations: Locations, refs: list[str]) -> list[Instance]:
    with registry.edit(locations, lambda reg: _tables(resolve_all(reg, refs), reg, with_previous=True)) as editor:
        targets = resolve_all(editor.registry, refs)
        for instance in targets:
            editor.remove(instance.id)
    return targets


def _last_table(reg: Registry) -> Span | None:
    """An add touches the last instance table (its trailing comments move below the new one)."""
    count = len(reg.instances)
    return (count - 1, count, True) if count else None


def _tables(targets: list[Instance], reg: Registry, with_previous: bool = False) -> Span | None:
    """The run of instance tables holding `targets` (and the one before: a removed table's trailing
    comments go to it), or None when there is none before."""
    indexes = [reg.instances.index(instance) for instance in targets]
    first = min(indexes) - (1 if with_previous else 0)
    return (first, max(indexes) + 1, False) if first >= 0 else None


def resolve_all(reg: Registry, refs: list[str]) -> list[Instance]:
    """Every ref resolved before anything changes, duplicates folded, order kept."""
    found: dict[str, Instance] = {}
    for ref in refs:
        instance = reg.find(ref)
        found.setdefault(instance.id, instance)
    return list(found.values())
