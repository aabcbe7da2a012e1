"""A config split into what is compiled (``Spec``) and what is traced (``Params``), as PyTrees.

Every config key declares its role where it is declared (:mod:`olfacto.config`:
``static(…)``, ``traced(…)``, ``data(…)``, ``host(…)``); this module only reads
those marks, so a new key lands on the right side without a second list:

- :class:`Spec` holds the ``static`` keys (and the shapes the network's components derive
  from them and a ``traced`` key at once, e.g. the synapse slots per row K_max). It is hashable and
  is the cache key of the compiled programs: two configs with equal Specs run
  in one ``vmap`` of one program.
- :class:`Params` holds the ``traced`` keys as float32 scalars, a PyTree whose
  leaves are vmapped across a batch of runs (η, λ, σ, p, …).

Both mirror the config's sections: ``spec.circuit.n_cortex``,
``params.learning.lr``.
"""

from __future__ import annotations

from typing import Any, Iterator

import jax
import jax.numpy as jnp

from .schema import Config, get_dotted, inherit_of, keys_by_role


class Frozen:
    """An immutable, hashable namespace of static values (nested for config sections)."""

    __slots__ = ("_items",)

    def __init__(self, **items: Any):
        object.__setattr__(self, "_items", tuple(sorted(items.items())))

    def __getattr__(self, name: str) -> Any:
        for key, value in object.__getattribute__(self, "_items"):
            if key == name:
                return value
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Frozen is immutable")

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frozen) and self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Frozen({', '.join(f'{k}={v!r}' for k, v in self._items)})"


@jax.tree_util.register_pytree_with_keys_class
class Leaves:
    """A PyTree namespace: attribute access to traced leaves (or nested ``Leaves``)."""

    def __init__(self, **items: Any):
        self.__dict__.update(items)

    def tree_flatten_with_keys(self):
        keys = sorted(self.__dict__)
        return [(jax.tree_util.GetAttrKey(k), self.__dict__[k]) for k in keys], tuple(keys)

    @classmethod
    def tree_unflatten(cls, keys, leaves):
        return cls(**dict(zip(keys, leaves)))

    def __repr__(self) -> str:
        return f"Leaves({', '.join(f'{k}={v!r}' for k, v in sorted(self.__dict__.items()))})"


def _nest(flat: dict[str, Any], leaf: type) -> Any:
    """{"a.b": 1, "a.c": 2, "d": 3} → leaf(a=leaf(b=1, c=2), d=3)."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    def build(node):
        return leaf(**{k: build(v) if isinstance(v, dict) else v for k, v in node.items()})

    return build(tree)


Spec = Frozen
"""The static part of a config: ``spec.circuit.n_cortex``, … and the shapes the network's components add
(:func:`olfacto.model.network.spec_of`: ``spec.projection.slots`` = K_max, ``spec.recurrence.slots``, …)."""

Params = Leaves
"""The traced part of a config: ``params.learning.lr``, … (float32 scalars, or stacked along a batch)."""


def static_values(cfg: Config) -> dict[str, Any]:
    """The ``static`` keys of ``cfg`` by dotted name (what compiles)."""
    return {key: get_dotted(cfg, key) for key in keys_by_role("static")}


def nest(flat: dict[str, Any]) -> Frozen:
    """``{"a.b": 1}`` → ``Frozen(a=Frozen(b=1))``: a hashable Spec from dotted names."""
    return _nest(flat, Frozen)


def params_of(cfg: Config) -> Params:
    """The traced part of ``cfg``: its ``traced`` keys as float32 scalars (a null key that inherits
    takes its source's value, e.g. ``recurrence.lr`` ← ``learning.lr``)."""
    def value(key: str) -> Any:
        v = get_dotted(cfg, key)
        source = inherit_of(key) if v is None else None
        return get_dotted(cfg, source) if source else v

    flat = {key: jnp.asarray(value(key), jnp.float32) for key in keys_by_role("traced")}
    return _nest(flat, Leaves)


def data_key(cfg: Config) -> tuple:
    """The ``data`` keys that matter for ``cfg`` (the measured library is read only for ``dataset``)."""
    if cfg.odors.kind != "dataset":
        return ()
    return tuple(get_dotted(cfg, key) for key in keys_by_role("data"))
