"""`{{ keychain.<alias>.<field> }}` templates, rendered on the worker right before a tool runs.

The server leaves every template that references `keychain` verbatim (dsl.md §8.5 D, §8.6). Here
each alias such a template names is resolved through the command's secrets (the secrets
service's `Resolve`), and the template is rendered against the command's context plus
`keychain`. The resolved values never leave the worker: the rendered config goes only to the
tool, and the command's events are redacted of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import minijinja

from language.templating import Renderer, TemplateError
from worker.tools.base import ToolCall

_ROOT = "keychain"


class KeychainRenderer(Renderer):
    """A renderer that resolves `keychain` templates instead of leaving them for the worker."""

    def references_keychain(self, text: str) -> bool:
        return False


_FINDER = Renderer()
_RENDERER = KeychainRenderer()
_ANALYSIS = minijinja.Environment()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _paths(text: str) -> frozenset[str]:
    try:
        return frozenset(_ANALYSIS.undeclared_variables_in_str(text, nested=True))
    except Exception as exc:
        raise TemplateError(f"keychain template does not parse: {exc}") from None


def _render(value: Any, context: Mapping[str, Any]) -> Any:
    """Only the strings that reference `keychain` are rendered: the rest was rendered already."""
    if isinstance(value, str):
        return _RENDERER.render_value(value, context) if _FINDER.references_keychain(value) else value
    if isinstance(value, Mapping):
        return {
            (_RENDERER.render_text(k, context) if _FINDER.references_keychain(str(k)) else k): _render(
                item, context
            )
            for k, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_render(item, context) for item in value]
    return value


def aliases(value: Any) -> set[str]:
    """The keychain aliases the templates in `value` reference.

    Raises:
        TemplateError: a template references `keychain` without naming an alias.
    """
    found: set[str] = set()
    for text in _strings(value):
        if not _FINDER.references_keychain(text):
            continue
        for path in _paths(text):
            parts = path.split(".")
            if parts[0] != _ROOT:
                continue
            if len(parts) < 2:
                raise TemplateError(f"a keychain reference must name an alias (keychain.<alias>): {text!r}")
            found.add(parts[1])
    return found


async def resolve_keychain(call: ToolCall) -> ToolCall:
    """The call with its `keychain` templates rendered (itself when it has none).

    Raises:
        worker.credentials.SecretError: an alias cannot be resolved.
        TemplateError: a template does not render.
    """
    names = aliases(call.config) | aliases(call.input)
    if not names:
        return call
    keychain: dict[str, Any] = {}
    for alias in sorted(names):
        keychain[alias] = await call.secrets.credential(alias)
    context = {**call.render_context, **call.input, _ROOT: keychain}
    try:
        config = _render(call.config, context)
        inputs = _render(call.input, context)
    except TemplateError as exc:
        raise TemplateError(f"keychain template: {exc.message}") from None
    return replace(call, config=config, input=inputs)
