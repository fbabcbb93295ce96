"""One registry type for every extension point (networks, searchers, schedulers, trackers, report tables): entries
by name in the order they were registered, one rule for a duplicate name and one error for an unknown one."""
from __future__ import annotations

from typing import Callable, Generic, Iterable, Iterator, TypeVar

from .errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind. `kind` names it in errors ("network", "search", "--log"); `error` is the
    UserError subclass an unknown name raises; `order` sorts the names listed (default: registration order)."""

    def __init__(self, kind: str, error: type[UserError] = UserError,
                 order: Callable[[Iterable[str]], list[str]] = list):
        self.kind, self.error, self._order = kind, error, order
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name`; a name taken already is a programming error (ValueError), never replaced."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str, error: type[UserError] | None = None) -> T:
        """The entry of `name`; an unknown one raises `error` (default: the registry's) listing the known."""
        try:
            return self._entries[name]
        except KeyError:
            raise (error or self.error)(f"unknown {self.kind} '{name}'; use one of {', '.join(self.names())}") \
                from None

    def pop(self, name: str, default: T | None = None) -> T | None:
        """Remove `name` (a test that registered its own entry cleans up with this); `default` if it was not
        there."""
        return self._entries.pop(name, default)

    def names(self) -> list[str]:
        return self._order(self._entries)

    def values(self) -> list[T]:
        return [self._entries[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
