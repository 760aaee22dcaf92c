"""Node parameters declared from the typed dataclasses that hold their defaults and rules."""

from __future__ import annotations

import dataclasses
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from ddpg_ros.core.config import field_docs


def declare_fields(node: Node, cls: type, defaults: Any) -> dict[str, Any]:
    """
    Declare a read-only parameter per dataclass field (default, docstring); return the values.

    Read-only: the core is built from these once; a later change would lie.
    """
    docs = field_docs(cls)
    values = {}
    for f in dataclasses.fields(cls):
        default = getattr(defaults, f.name)
        default = list(default) if isinstance(default, tuple) else default
        # An empty list says nothing of its element type, and rclpy would guess wrong: the
        # field's annotation (``tuple[int, ...]``) says it.
        declared = _empty_list_type(f) if default == [] else default
        descriptor = ParameterDescriptor(description=docs.get(f.name, ''), read_only=True)
        value = node.declare_parameter(f.name, declared, descriptor).value
        values[f.name] = default if value is None else value
    return values


def _empty_list_type(f: dataclasses.Field) -> Parameter.Type:
    """Return the ROS type of a list field whose default is empty: integers or doubles."""
    # A string under ``from __future__ import annotations``, else a type: str() reads both.
    if str(f.type).startswith('tuple[int'):
        return Parameter.Type.INTEGER_ARRAY
    return Parameter.Type.DOUBLE_ARRAY
