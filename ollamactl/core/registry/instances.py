"""The instance registry: its model, validation, lookup, and safe edits of the TOML file.

Reads use the stdlib TOML parser (fast, used by `pick`). Edits go through tomlkit so that a user's
comments and hand-added keys survive, happen under a lock on a separate file, keep a `.bak` of
the last good file and replace the file atomically. A corrupt file is never overwritten and a file
written by a newer schema version is never rewritten.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ollamactl.core import settings
from ollamactl.core.errors import RegistryError, UsageError
from ollamactl.core.registry import DEFAULT_PORT
from ollamactl.core.registry import file as registry_file
from ollamactl.core.routing.selection import BACKUP_TIER
from ollamactl.core.state.schema import shallow

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import datetime as dt
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import Any
    from typing import NamedTuple as Record

    from ollamactl.core.paths import Locations
    from ollamactl.core.registry.regions import Span
else:
    from ollamactl.core.records import Record

SCHEMA_VERSION = 1
TYPES = ("chat", "embedding", "both")
MAX_PRIORITY = BACKUP_TIER - 1  # tiers are -1000..1000; `backup` is the tier below all of them
BACKUP = "backup"
MAX_INFLIGHT = 100_000
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
NEW_FILE_HEADER = (
    "# ollamactl instance registry. Edit by hand if you like: comments and extra keys are kept.\n"
    "# Reference: `ollamactl --help`, and the section 'The registry file' of ollamactl's README.\n"
)


class Instance(Record):
    """One registered server. A NamedTuple, not a dataclass: `pick` must not pay for importing inspect."""

    id: str
    name: str
    url: str
    type: str = "both"
    enabled: bool = True
    weight: int = 1
    api_key_env: str | None = None
    api_key: str | None = None
    created_at: str | None = None
    priority: int = 0  # tier: lower is preferred; BACKUP_TIER for `backup`
    max_inflight: int | None = None  # leases at once; None: unlimited

    def __repr__(self) -> str:  # never a key value, even in a traceback
        return f"Instance(id={self.id!r}, url={self.url!r}, type={self.type!r}, auth={self.auth!r})"

    @property
    def auth(self) -> str:
        """How the instance authenticates, without ever revealing a key: none, env:VAR or stored."""
        if self.api_key_env:
            return f"env:{self.api_key_env}"
        return "stored" if self.api_key else "none"

    def resolve_api_key(self) -> str | None:
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return self.api_key

    @property
    def tier_name(self) -> int | str:
        """The priority as written in the registry: an integer, or `backup`."""
        return BACKUP if self.priority == BACKUP_TIER else self.priority

    def serves(self, request_type: str) -> bool:
        return self.type == "both" or self.type == request_type

    def public(self) -> dict[str, Any]:
        """The JSON form used by every command: no key value, ever."""
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "type": self.type,
            "enabled": self.enabled,
            "weight": self.weight,
            "priority": self.tier_name,
            "max_inflight": self.max_inflight,
            "auth": self.auth,
            "created_at": self.created_at,
        }


def columns_ok(columns: Any) -> bool:
    """Whether `columns` are Instances kept by field in a cache (core/registry/snapshot.py,
    core/routing/pick_memo.py): a tuple per field, all as long, and no stored API key (kept in the registry only)."""
    if type(columns) is not tuple or len(columns) != len(Instance._fields) \
            or any(type(column) is not tuple for column in columns):
        return False
    count = len(columns[0])
    keys = columns[Instance._fields.index("api_key")]
    return all(len(column) == count for column in columns) and keys.count(None) == count


class Registry(Record):
    path: Path | str
    version: int
    settings: dict[str, Any]
    instances: tuple[Instance, ...]

    def setting(self, key: str) -> Any:
        return self.settings.get(key, settings.DEFAULTS[key])

    def find(self, ref: str) -> Instance:
        """The instance whose id, else name, is `ref`; a UsageError with close matches otherwise."""
        from ollamactl.core.params import text

        text("ref", ref)
        for instance in self.instances:
            if instance.id == ref:
                return instance
        for instance in self.instances:
            if instance.name == ref:
                return instance
        known = [i.id for i in self.instances] + [i.name for i in self.instances if i.name != i.id]
        import difflib

        close = difflib.get_close_matches(ref, known, n=3, cutoff=0.4)
        if close:
            hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif known:
            hint = "see `ollamactl list` for the registered ids and names"
        else:
            hint = "the registry is empty; add one with `ollamactl add URL`"
        raise UsageError(f"no instance with id or name {ref!r}", hint)


def default_instance(ollama_host: str | None) -> Instance:
    """The instance used when nothing is registered: `ollama_host` (OLLAMA_HOST), else DEFAULT_URL."""
    host = (ollama_host or "").strip()
    url = DEFAULT_URL
    if host:
        from ollamactl.core.registry.urls import normalise_url

        try:
            url = normalise_url(host)
        except UsageError as exc:
            raise UsageError(f"OLLAMA_HOST: {exc.message}", exc.hint) from None
    return Instance(id="default", name="default", url=url, api_key_env="OLLAMA_API_KEY")


def load(path: Path | str) -> Registry:
    """Read and validate the registry at `path` (see registry_file); a missing file is an empty registry."""
    raw = registry_file.read(path, path)
    if raw is None:
        return Registry(path, SCHEMA_VERSION, {}, ())
    return _validate(path, _parse(path, registry_file.split_bom(raw)[1]))


def _parse(path: Path | str, raw: bytes) -> dict[str, Any]:
    """The TOML document in `raw` (without its BOM), checked for depth."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data = tomllib.loads(raw.decode("utf-8"))
        if shallow(data, registry_file.MAX_DEPTH):
            return data
    except RecursionError:
        pass
    except UnicodeDecodeError as exc:
        raise RegistryError(
            f"registry {path} is not UTF-8 text (byte {exc.start})", f"fix it by hand or restore {path}.bak"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(
            f"registry {path} is not valid TOML: {_located(str(exc), raw)}",
            f"fix that line by hand or restore the last good copy from {os.path.realpath(path)}.bak",
        ) from None
    raise RegistryError(f"registry {path} nests tables or arrays more than {registry_file.MAX_DEPTH} levels deep",
                        f"fix it by hand or restore the last good copy from {os.path.realpath(path)}.bak")


def _located(message: str, raw: bytes) -> str:
    """tomllib's message, with the line and column spelled out where it only says "at end of document"
    (a truncated file)."""
    end = "(at end of document)"
    if not message.endswith(end):
        return message
    text = raw.decode("utf-8")
    line = text.count("\n") + 1
    column = len(text) - (text.rfind("\n") + 1) + 1
    return f"{message[: -len(end)]}(at end of document, line {line}, column {column}: is the file cut short?)"


def _validate(path: Path | str, data: dict[str, Any]) -> Registry:
    def bad(where: str, problem: str) -> RegistryError:
        return RegistryError(f"registry {path}: {where} {problem}", "fix it by hand, or restore the .bak file")

    version = data.get("version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad("version", f"must be a positive integer, got {version!r}")
    given = data.get("settings", {})
    if not isinstance(given, dict):
        raise bad("[settings]", "must be a table")
    usable = {}
    for key, value in given.items():
        problem = settings.problem(key, value)
        if problem is None:
            usable[key] = value
        elif version <= SCHEMA_VERSION:
            raise bad(f"settings.{key}", problem)
        # else a newer schema's meaning we do not know: use the default instead
    clash = settings.conflict(usable)
    if clash is not None and version <= SCHEMA_VERSION:
        raise bad(f"settings.{clash[0]}", clash[1])
    entries = data.get("instances", [])
    if not isinstance(entries, list):
        raise bad("instances", "must be an array of tables ([[instances]])")
    instances: list[Instance] = []
    seen: dict[str, set[str]] = {"id": set(), "name": set(), "url": set()}
    for index, entry in enumerate(entries):
        where = f"instances[{index}]"
        if not isinstance(entry, dict):
            raise bad(where, "must be a table")
        try:
            instance = _instance_from(entry)
        except (TypeError, ValueError, UsageError) as exc:
            raise bad(where, str(exc)) from None
        for key in ("id", "name", "url"):
            value = getattr(instance, key)
            if value in seen[key]:
                written = entry.get(key)
                spelled = f" (as written: {written!r})" if written != value else ""
                raise bad(f"{where}.{key}", f"duplicates another instance's {key} {value!r}{spelled}")
            seen[key].add(value)
        instances.append(instance)
    return Registry(path, version, usable, tuple(instances))


# The problems below are words to follow the field's name: the file names its key (`weight`), Fleet's
# callers the parameter, each in their own words (registry/edits.py: the CLI shows its flags).

def type_problem(kind: Any) -> str | None:
    """Why `kind` cannot be an instance's type, or None: the one rule for the file and for flags."""
    return None if kind in TYPES else f"must be one of {', '.join(TYPES)}, got {kind!r}"


def weight_problem(weight: Any) -> str | None:
    """Why `weight` cannot be an instance's weight, or None."""
    return settings.number_problem("weight", weight)


def priority_value(value: Any) -> int:
    """A priority from the registry or a flag (an integer, or `backup`) as a tier number; ValueError
    (its problem, see above) if bad."""
    if value == BACKUP:
        return BACKUP_TIER
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            pass
    if not isinstance(value, int) or isinstance(value, bool) or not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(f"{value!r} is not a whole number from {-MAX_PRIORITY} to {MAX_PRIORITY}"
                         f" or {BACKUP!r}")
    return value


def max_inflight_problem(value: Any) -> str | None:
    """Why `value` cannot be an instance's max_inflight, or None."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INFLIGHT:
        return f"{value!r} is not a whole number from 1 to {MAX_INFLIGHT}"
    return None


def _instance_from(entry: dict[str, Any]) -> Instance:
    from ollamactl.core.registry.urls import normalise_url, validate_id

    def text(key: str, required: bool = False) -> str | None:
        value = entry.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            shown = f"a value of type {type(value).__name__}" if key == "api_key" else repr(value)  # never show a key
            raise ValueError(f"{key} must be a non-empty string, got {shown}")
        return value

    instance_id = validate_id(text("id", required=True) or "")  # required: never None
    url = normalise_url(text("url", required=True))
    kind = entry.get("type", "both")
    problem = type_problem(kind)
    if problem:
        raise ValueError(f"type {problem}")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be true or false, got {enabled!r}")
    weight = entry.get("weight", 1)
    problem = weight_problem(weight)
    if problem:
        raise ValueError(f"weight {problem}")
    priority = entry.get("priority", 0)
    if isinstance(priority, str) and priority != BACKUP:
        raise ValueError(f"priority must be a whole number or {BACKUP!r}, got {priority!r}")
    try:
        priority = priority_value(priority)
    except ValueError as exc:
        raise ValueError(f"priority {exc}") from None
    max_inflight = entry.get("max_inflight")
    problem = None if max_inflight is None else max_inflight_problem(max_inflight)
    if problem:
        raise ValueError(f"max_inflight {problem}")
    created = entry.get("created_at")
    return Instance(
        id=instance_id,
        name=text("name") or instance_id,
        url=url,
        type=kind,
        enabled=enabled,
        weight=weight,
        api_key_env=text("api_key_env"),
        api_key=text("api_key"),
        created_at=_datetime_text(created) if created is not None else None,
        priority=priority,
        max_inflight=max_inflight,
    )


def _datetime_text(value: Any) -> str:
    """A TOML datetime as RFC 3339 text (UTC as `Z`); other values as written."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.utcoffset() == dt.timedelta(0):
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    return str(value)


class Editor:
    """A registry opened for change under the lock; `instances` is a list of plain dicts.

    Blank lines and comments after an instance's last key belong to whatever follows it (the next
    `[[instances]]`, a `[settings]` table), so adding, removing and setting keys keep them in place.
    """

    def __init__(self, path: Path, document: Any, registry: Registry):
        self.path = path
        self.document = document
        self.registry = registry  # as read; after a successful edit, as written

    def table_for(self, instance_id: str) -> Any:
        for table in self.document.get("instances", []):
            if table.get("id") == instance_id:
                return table
        raise UsageError(f"no instance with id {instance_id!r}")

    def append(self, values: dict[str, Any]) -> None:
        import tomlkit
        from tomlkit.items import AoT

        values = {key: value for key, value in values.items() if value is not None}
        instances = self.document.get("instances")
        if instances is not None and not isinstance(instances, AoT):
            if len(instances):  # a hand-written `instances = [{...}]`: keep its style
                entry = tomlkit.inline_table()
                entry.update(values)
                instances.append(entry)
                return
            del self.document["instances"]  # `instances = []`
            instances = None
        if instances is None:
            self.document["instances"] = tomlkit.aot()
            instances = self.document["instances"]
        trailer = _pop_trailer(instances[-1]) if len(instances) else []
        table = tomlkit.table()
        table.trivia.indent = "\n"  # a blank line before each [[instances]]
        for key, value in values.items():
            table[key] = value
        instances.append(table)
        _extend(table, trailer)

    def remove(self, instance_id: str) -> None:
        from tomlkit.items import AoT

        instances = self.document["instances"]
        index = next((i for i, table in enumerate(instances) if table.get("id") == instance_id), None)
        if index is None:
            raise UsageError(f"no instance with id {instance_id!r}")
        table = instances[index]
        trailer = _pop_trailer(table)
        lead = getattr(table, "trivia", None)
        lead = lead.indent if lead is not None and "#" in lead.indent else ""  # comments moved here earlier
        del instances[index]
        if index > 0:
            _extend(instances[index - 1], trailer)
        elif len(instances):
            _prefix(instances[0], lead + _text(trailer))
        elif isinstance(instances, AoT):
            self._drop_empty_instances(lead + _text(trailer))

    def _drop_empty_instances(self, kept: str) -> None:
        """Delete an emptied [[instances]] (tomlkit would write `instances = []` at the top)."""
        import tomlkit
        from tomlkit.items import AoT, Table

        body = self.document.body
        position = next(i for i, (key, _) in enumerate(body) if key is not None and key.key == "instances")
        following = body[position + 1][1] if position + 1 < len(body) else None
        del self.document["instances"]
        if isinstance(following, AoT) and len(following):
            following = following[0]
        if isinstance(following, Table):
            _prefix(following, kept)
        elif kept:
            for _, item in tomlkit.parse(kept).body:
                self.document.add(item)


def set_value(table: Any, key: str, value: Any) -> None:
    """Set `key` in an instance table; a new key goes after the last key, not after the trailer."""
    if key in table:
        table[key] = value
        return
    trailer = _pop_trailer(table)
    table[key] = value
    _extend(table, trailer)


def _pop_trailer(table: Any) -> list[Any]:
    from tomlkit.items import Comment, Table, Whitespace

    if not isinstance(table, Table):
        return []
    body = table.value.body
    trailer: list[Any] = []
    while body and body[-1][0] is None and isinstance(body[-1][1], (Whitespace, Comment)):
        trailer.insert(0, body.pop()[1])
    return trailer


def _extend(table: Any, items: list[Any]) -> None:
    for item in items:
        table.value.append(None, item)


def _text(items: list[Any]) -> str:
    return "".join(item.as_string() for item in items)


def _prefix(table: Any, text: str) -> None:
    """Put blank lines and comments before a table's header."""
    table.trivia.indent = text + table.trivia.indent


@contextlib.contextmanager
def edit(locations: Locations, focus: Callable[[Registry], Span | None] | None = None) -> Iterator[Editor]:
    """Open the registry for a read-modify-write; the file is replaced only if the block succeeds.

    `focus(registry)` names the instance tables the block will touch (see registry_regions): only
    they are parsed with tomlkit, when the file's shape allows it. The new content is validated
    before it is written (after the file's BOM, if it had one), the previous content goes to `.bak`.
    """
    import tomlkit

    from ollamactl.core.registry import regions as registry_regions
    from ollamactl.core.state import atomic_files

    target = locations.registry_target
    shown = locations.registry
    lock_file = locations.registry_lock
    with contextlib.ExitStack() as stack:
        with _os_errors("lock", lock_file):  # waiting while the edits queued ahead keep replacing the file
            stack.enter_context(atomic_files.locked(lock_file, progress=lambda: atomic_files.file_stamp(target)))
        raw = registry_file.read(target, shown)
        bom, text = registry_file.split_bom(raw or b"")
        region = None
        if raw is None:
            document = tomlkit.parse(NEW_FILE_HEADER)
            document["version"] = SCHEMA_VERSION
            registry = Registry(shown, SCHEMA_VERSION, {}, ())
        else:
            data = _parse(shown, text)
            registry = _validate(shown, data)
            if registry.version > SCHEMA_VERSION:
                raise RegistryError(
                    f"registry {shown} was written by a newer ollamactl (schema version {registry.version},"
                    f" this one knows {SCHEMA_VERSION}); it was not changed",
                    "upgrade ollamactl (pip install -U ollamactl)",
                )
            span = _span(focus, registry)
            region = registry_regions.find(text.decode("utf-8"), data, span) if span else None
            try:
                document = region.document if region else tomlkit.parse(text.decode("utf-8"))
            except ValueError as exc:  # tomlkit is stricter than tomllib in a few corners
                raise RegistryError(f"registry {shown} cannot be edited safely: {exc}; it was not changed",
                                    "edit it by hand") from None
        editor = Editor(shown, document, registry)
        yield editor
        new = (region.text() if region else tomlkit.dumps(document)).encode("utf-8")
        try:
            new_data = _parse(shown, new)
            written = _validate(shown, new_data)
        except RegistryError as exc:
            raise RegistryError(f"this change would leave an invalid registry ({exc.message});"
                                f" {shown} was not changed") from None
        if region is not None and new_data != region.expected(data):  # the text outside the region is untouched
            raise RegistryError(f"registry {shown} cannot be edited safely (the edit reached beyond its tables);"
                                " it was not changed", "edit it by hand")
        with _os_errors("write", shown):
            if raw is not None:
                atomic_files.atomic_write(locations.backup, raw)
            atomic_files.atomic_write(target, bom + new)
        editor.registry = written


def _span(focus: Callable[[Registry], Span | None] | None, registry: Registry) -> Span | None:
    """The instance tables `focus` names, or None (parse everything) when it cannot tell: an
    unknown id is reported by the edit itself."""
    if focus is None:
        return None
    try:
        return focus(registry)
    except UsageError:
        return None


@contextlib.contextmanager
def _os_errors(action: str, path: Path) -> Iterator[None]:
    """An OSError (permissions, a full disk, a directory in the way) as one RegistryError line."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise RegistryError(f"cannot {action} {path}: {exc.strerror or exc}{where}",
                            "check the permissions of that file and its directory") from None


def now_utc() -> dt.datetime:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
