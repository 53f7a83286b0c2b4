"""One registry of provider kinds: every fact about a kind, in one place, without importing its SDK.

A policy's ``[providers.NAME]`` entry names a ``kind``. What Taelio needs to
know about that kind (which adapter class serves it, which SDK it uses, the
environment variables that may hold its key, the SDK's own base-URL
variable, its id in the ``genai-prices`` catalogue, whether it needs a
``base_url``) is one ``ProviderKind`` value here. The policy parser, the
settings, the pricer and ``build_providers`` all ask this registry.

The adapter classes import their SDKs, which is slow, and importing
``taelio_core`` must stay cheap: so a kind names its adapter by module path
(``"taelio_core.providers.openai:OpenAIProvider"``) and the module is imported
only when a policy actually builds one.

Adding a kind is one new module: a ``Provider`` subclass decorated with
``@register_provider(...)`` (the decorator records the facts on the class as
``facts`` and in the registry, as simonw/llm's ``register_models`` hook
does). A policy naming a kind nobody registered yet makes the registry import
``taelio_core.providers.<kind>`` once, so a module dropped there is found.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from taelio_core.providers.base import Provider

__all__ = ["ProviderKind", "find_kind", "key_variables", "base_url_variables", "kind_names", "register_kind",
           "register_provider"]

P = TypeVar("P", bound="type[Provider]")
_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class ProviderKind:
    """Everything Taelio knows about one kind of provider."""

    name: str                                   # the policy's ``kind = "..."``
    adapter: str                                # "module:Class", imported only when a policy builds one
    label: str = ""
    sdk: str | None = None                      # the pip distribution the adapter imports
    key_env: tuple[str, ...] = ()               # variables that may hold its key, in order
    base_url_env: str | None = None             # the SDK's own base-URL variable
    catalogue_id: str | None = None             # its provider id in genai-prices (None: no catalogue prices)
    needs_base_url: bool = False                # a self-hosted server: no default endpoint
    # The key comes only from the entry's ``api_key_env``, never from the kind's variables: an
    # OpenAI-compatible server must never be sent $OPENAI_API_KEY.
    key_from_entry_only: bool = False
    simulator: bool = False                     # the offline simulator, not a real provider
    extras: Mapping[str, object] = field(default_factory=dict)

    def key_names(self, api_key_env: str | None) -> tuple[str, ...]:
        """The variables to read this entry's key from (empty: it needs none)."""
        if api_key_env is not None:
            return (api_key_env,) if api_key_env else ()
        return () if self.key_from_entry_only else self.key_env

    def load(self) -> type[Provider]:
        module_name, _, class_name = self.adapter.partition(":")
        return getattr(import_module(module_name), class_name)


_KINDS: dict[str, ProviderKind] = {}


def register_kind(kind: ProviderKind) -> ProviderKind:
    """Add (or replace) a kind. Returns it, so a module can keep a reference."""
    if not _KIND_NAME.match(kind.name):
        raise ValueError(f"a provider kind is named in lower-case letters, digits and '_', not {kind.name!r}")
    _KINDS[kind.name] = kind
    return kind


def register_provider(**facts: object) -> Callable[[P], P]:
    """Class decorator: register the class's ``kind`` with these facts and keep them on the class as ``facts``.

    ``@register_provider(key_env=("COHERE_API_KEY",), sdk="cohere", catalogue_id="cohere")``
    """
    def wrap(cls: P) -> P:
        kind = register_kind(ProviderKind(name=cls.kind, adapter=f"{cls.__module__}:{cls.__qualname__}",
                                          **facts))  # type: ignore[arg-type]
        cls.facts = kind  # type: ignore[attr-defined]
        return cls
    return wrap


def find_kind(name: str, *, discover: bool = True) -> ProviderKind | None:
    """The registered kind ``name``; with ``discover``, import ``taelio_core.providers.<name>`` once to find it."""
    kind = _KINDS.get(name)
    if kind is None and discover and _KIND_NAME.match(name) and name not in _TRIED:
        _TRIED.add(name)
        try:
            import_module(f"taelio_core.providers.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"taelio_core.providers.{name}":
                raise  # the module exists but needs something missing: say so, do not hide it
        kind = _KINDS.get(name)
    return kind


_TRIED: set[str] = set()


def kind_names() -> list[str]:
    return list(_KINDS)


class _Variables(Mapping[str, tuple[str, ...]]):
    """A live view: kind -> its key variables (kinds registered later show up too)."""

    def __init__(self, pick: Callable[[ProviderKind], tuple[str, ...]]) -> None:
        self._pick = pick

    def _items(self) -> dict[str, tuple[str, ...]]:
        return {name: self._pick(kind) for name, kind in _KINDS.items() if self._pick(kind)}

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self._items()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


def key_variables() -> Mapping[str, tuple[str, ...]]:
    """kind -> the environment variables that may hold its key, in order (kinds that have some)."""
    return _Variables(lambda k: k.key_env)


def base_url_variables() -> Mapping[str, tuple[str, ...]]:
    """kind -> (its SDK's base-URL variable,) (kinds that have one)."""
    return _Variables(lambda k: (k.base_url_env,) if k.base_url_env else ())


# The built-in kinds, by module path (their modules import the SDKs; nothing here does).
register_kind(ProviderKind(name="gemini", label="Google Gemini", adapter="taelio_core.providers.gemini:GeminiProvider",
                           sdk="google-genai", key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
                           base_url_env="GOOGLE_GEMINI_BASE_URL", catalogue_id="google"))
register_kind(ProviderKind(name="openai", label="OpenAI", adapter="taelio_core.providers.openai:OpenAIProvider",
                           sdk="openai", key_env=("OPENAI_API_KEY",), base_url_env="OPENAI_BASE_URL",
                           catalogue_id="openai"))
register_kind(ProviderKind(name="anthropic", label="Anthropic",
                           adapter="taelio_core.providers.anthropic:AnthropicProvider", sdk="anthropic",
                           key_env=("ANTHROPIC_API_KEY",), base_url_env="ANTHROPIC_BASE_URL",
                           catalogue_id="anthropic"))
register_kind(ProviderKind(name="openai_compatible", label="OpenAI-compatible server",
                           adapter="taelio_core.providers.openai_compatible:OpenAICompatibleProvider", sdk="openai",
                           needs_base_url=True, key_from_entry_only=True))
register_kind(ProviderKind(name="simulated", label="Simulator",
                           adapter="taelio_core.providers.simulated:SimulatedProvider", simulator=True))
