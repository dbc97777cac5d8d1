"""Dispatch tables for the exporters and loaders: a key (a layer class, a traced function, an op name) -> a function.

Every framework walker looks up what to emit for a layer or a call here rather than in a chain of ``isinstance``
tests, so adding a layer is one decorated function. The first registration of a key wins (later ones are ignored),
which keeps the order of precedence readable from top to bottom of a module.

    >>> table = Registry("example")
    >>> @table.register(int, bool)
    ... def _number(value):
    ...     return "number"
    >>> table.get(int)(1), table.for_type(bool)(True), table.get(str)
    ('number', 'number', None)
    >>> class Sub(int): ...
    >>> table.for_type(Sub)(Sub(2))
    'number'
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any


class Registry:
    """A named table from hashable keys to handler functions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._table: dict[Hashable, Callable[..., Any]] = {}

    def register(self, *keys: Hashable) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: file the function under every key given (a key already filed keeps its first function)."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add(keys, fn)
            return fn

        return decorate

    def add(self, keys: Iterable[Hashable], fn: Callable[..., Any]) -> None:
        """File ``fn`` under each of ``keys`` (a key already filed keeps its first function)."""
        for key in keys:
            self._table.setdefault(key, fn)

    def get(self, key: Hashable, default: Callable[..., Any] | None = None) -> Callable[..., Any] | None:
        """The function filed under ``key`` exactly, else ``default``."""
        try:
            return self._table.get(key, default)
        except TypeError:  # an unhashable key (a traced call's target can be anything) is simply not filed
            return default

    def for_type(self, cls: type) -> Callable[..., Any] | None:
        """The function filed under ``cls`` or its nearest base class (its method resolution order), else None."""
        for base in cls.__mro__:
            fn = self._table.get(base)
            if fn is not None:
                return fn
        return None

    def __contains__(self, key: object) -> bool:
        try:
            return key in self._table
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {len(self._table)} keys)"


class EntryPoints:
    """One framework's ``export(model, example_inputs, path=None, **options)``, ``load(source, **options)`` and
    ``predict(model, inputs)``; each framework package names its own in ``ENTRY_POINTS`` (``jax_io`` has two, for
    ``nnx`` and ``linen``), so that :func:`nmn.interchange.export` and ``load`` dispatch on the framework name alone.

        >>> def export(model, example_inputs, path=None, **options): return "proto"
        >>> def load(source, **options): return "model"
        >>> def predict(model, inputs): return [1.0]
        >>> EntryPoints(export, load, predict).export(None, [])
        'proto'
    """

    __slots__ = ("export", "load", "predict")

    def __init__(
        self,
        export: Callable[..., Any],
        load: Callable[..., Any],
        predict: Callable[..., list],
    ) -> None:
        self.export = export
        self.load = load
        self.predict = predict

    def __repr__(self) -> str:
        return f"EntryPoints({self.export.__module__}.{self.export.__name__}, ...)"
