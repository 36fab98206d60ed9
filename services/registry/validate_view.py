"""Checking a view definition before it is stored (docs/web.md, "Views").

``validate_view`` raises the first problem found as ``InvalidView`` (422 ``invalid_definition``)
with ``component`` naming the component at fault, and otherwise returns the definition with
every handler's and binding's worklet resolved to ``worklet_id``.

Templates (a handler's or binding's ``input``) are JSON in which every string value may hold
placeholders ``{{component.value}}``; object keys are copied as they are, so they are not
checked. Anything between ``{{`` and ``}}`` is a placeholder, and must be exactly
``component.value`` with ``component`` the id of a component of the view (no spaces).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import msgspec

from services.registry.cycles import find_cycle
from services.registry.errors import InvalidView
from services.registry.validate import check_name
from shared.schemas import Binding, Component, ComponentType, Handler, ViewDefinition

MAX_DEBOUNCE_MS = 60_000

COMPONENT_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Anything between double braces is a placeholder; its inside must be `component.value`.
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
PLACEHOLDER_INSIDE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})\.([A-Za-z_][A-Za-z0-9_]*)$")

# The events each component type fires; a handler on any other event is refused.
EVENTS: dict[ComponentType, frozenset[str]] = {
    "button": frozenset({"click"}),
    "text_input": frozenset({"change", "submit"}),
    "number_input": frozenset({"change"}),
    "select": frozenset({"change"}),
    "checkbox": frozenset({"change"}),
    "text": frozenset(),
    "table": frozenset(),
    "json": frozenset(),
    "image": frozenset(),
}


def validate_view(view: ViewDefinition, worklets: Mapping[str, str]) -> ViewDefinition:
    """The view with worklet references resolved, or InvalidView.

    ``worklets`` maps every id and every name of the application's worklets to the id.
    """
    check_name(view.name, "view", InvalidView)
    ids = _check_ids(view.components)
    resolved: list[Component] = []
    for component in view.components:
        handlers: dict[str, Handler] = {}
        for event, handler in component.on.items():
            allowed = EVENTS[component.type]
            if event not in allowed:
                can = (
                    f"a {component.type} fires {_either(allowed)}"
                    if allowed
                    else f"a {component.type} fires no events"
                )
                raise InvalidView(
                    f"component {component.id!r} has a handler for {event!r}, but {can}",
                    component=component.id,
                )
            where = f"the {event!r} handler of component {component.id!r}"
            worklet_id = _worklet(handler.worklet, worklets, where, component.id)
            _check_template(handler.input, ids, where, component.id)
            for target in handler.assign:
                if target not in ids:
                    raise InvalidView(
                        f"{where} assigns to {target!r}, which is not a component of the view",
                        component=component.id,
                    )
            handlers[event] = msgspec.structs.replace(handler, worklet_id=worklet_id)
        binding = component.binding
        if binding is not None:
            where = f"the binding of component {component.id!r}"
            worklet_id = _worklet(binding.worklet, worklets, where, component.id)
            used = _check_template(binding.input, ids, where, component.id)
            if component.id in used:
                raise InvalidView(
                    f"{where} uses the component's own value in its input",
                    component=component.id,
                )
            if not 0 <= binding.debounce_ms <= MAX_DEBOUNCE_MS:
                raise InvalidView(
                    f"{where}: debounce_ms must be between 0 and {MAX_DEBOUNCE_MS}",
                    component=component.id,
                )
            binding = msgspec.structs.replace(binding, worklet_id=worklet_id)
        resolved.append(msgspec.structs.replace(component, on=handlers, binding=binding))
    _check_acyclic(view.components, ids)
    return msgspec.structs.replace(view, components=resolved)


def worklet_references(view: ViewDefinition) -> set[str]:
    """What the handlers and bindings name (worklet ids or names), to be resolved by the caller."""
    found: set[str] = set()
    for component in view.components:
        found.update(handler.worklet for handler in component.on.values())
        if component.binding is not None:
            found.add(component.binding.worklet)
    return found


def placeholders(template: msgspec.Raw) -> Iterator[str]:
    """The inside of every placeholder in the string values of a JSON template."""
    try:
        value = msgspec.json.decode(template)
    except msgspec.DecodeError:  # a Raw from a decoded body is always valid JSON
        return
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            yield from (m.group(1) for m in PLACEHOLDER.finditer(item))
        elif isinstance(item, list):
            todo.extend(reversed(item))
        elif isinstance(item, dict):
            todo.extend(reversed(list(item.values())))


def _either(events: frozenset[str]) -> str:
    names = [f"{e!r}" for e in sorted(events)]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _check_ids(components: list[Component]) -> dict[str, Component]:
    seen: dict[str, Component] = {}
    for index, component in enumerate(components):
        if not component.id:
            raise InvalidView(f"component {index} has an empty id", component=component.id)
        if COMPONENT_ID.fullmatch(component.id) is None:
            raise InvalidView(
                f"component id {component.id!r} must start with a letter or '_' and contain "
                "only letters, digits and '_' (at most 64 characters)",
                component=component.id,
            )
        if component.id in seen:
            raise InvalidView(
                f"component id {component.id!r} is used by more than one component",
                component=component.id,
            )
        seen[component.id] = component
    return seen


def _worklet(ref: str, worklets: Mapping[str, str], where: str, component: str) -> str:
    found = worklets.get(ref)
    if found is None:
        raise InvalidView(
            f"{where} names no worklet {ref!r} of this application (use a worklet's id or name)",
            component=component,
        )
    return found


def _check_template(
    template: msgspec.Raw, ids: Mapping[str, Component], where: str, component: str
) -> set[str]:
    """The ids of the components the template uses; InvalidView for a bad placeholder."""
    used: set[str] = set()
    for inside in placeholders(template):
        shown = "{{" + inside + "}}"
        match = PLACEHOLDER_INSIDE.fullmatch(inside)
        if match is None:
            raise InvalidView(
                f"placeholder {shown} in the input of {where} must be written "
                "{{component.value}}",
                component=component,
            )
        name, prop = match.groups()
        if name not in ids:
            raise InvalidView(
                f"placeholder {shown} in the input of {where} names no component of the view",
                component=component,
            )
        if prop != "value":
            raise InvalidView(
                f"placeholder {shown} in the input of {where} uses the property {prop!r}; "
                "only `value` can be used",
                component=component,
            )
        used.add(name)
    return used


def _depends_on(binding: Binding | None, ids: Mapping[str, Component]) -> list[str]:
    """The bound components whose values the binding's input uses (in order, once each)."""
    if binding is None:
        return []
    found: list[str] = []
    for inside in placeholders(binding.input):
        match = PLACEHOLDER_INSIDE.fullmatch(inside)
        if match is not None:
            name = match.group(1)
            if ids[name].binding is not None and name not in found:
                found.append(name)
    return found


def _check_acyclic(order: list[Component], ids: Mapping[str, Component]) -> None:
    """Bindings may feed each other (a bound value changes, the bindings using it run again),
    but not in a cycle."""
    cycle = find_cycle(
        (component.id for component in order if component.binding is not None),
        lambda id_: _depends_on(ids[id_].binding, ids),
    )
    if cycle:
        raise InvalidView(
            "the bindings depend on each other in a cycle: "
            f"{' -> '.join(cycle)} (each uses the value of the next)",
            component=cycle[-2],
        )
