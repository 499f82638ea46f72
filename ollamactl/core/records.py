"""`Record`: `typing.NamedTuple`'s class syntax without importing `typing` (for the `pick` path).

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple as Record
    else:
        from ollamactl.core.records import Record

    class Point(Record):
        x: int
        y: int = 0

        def norm(self) -> int: ...

builds the same class typing.NamedTuple would (a `collections.namedtuple` with the annotated
fields, their defaults, and the methods, properties and docstring of the body); type checkers see
NamedTuple itself. `import typing` costs more than the rest of a pick's own imports together.
"""

from __future__ import annotations

import collections

_KEPT_OUT = frozenset({"__module__", "__annotations__", "__qualname__", "__dict__", "__weakref__"})


class _RecordType(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, object]):  # type: ignore[no-untyped-def]
        if not bases:  # Record itself
            return super().__new__(mcs, name, bases, namespace)
        fields = list(namespace.get("__annotations__", {}))  # type: ignore[call-overload]
        defaults = [namespace[field] for field in fields if field in namespace]
        cls = collections.namedtuple(name, fields, defaults=defaults, module=namespace.get("__module__"))  # type: ignore[misc, arg-type]
        cls.__qualname__ = namespace.get("__qualname__", name)  # type: ignore[assignment]
        for key, value in namespace.items():
            if key not in _KEPT_OUT and key not in fields:
                setattr(cls, key, value)
        return cls


class Record(metaclass=_RecordType):
    """Subclass it as you would typing.NamedTuple (see the module docstring)."""
