"""The base of every AI SDK wire model, and serialising one.

Attributes are snake_case, serialised as the AI SDK's camelCase; unknown keys are kept so
messages written by newer clients round-trip unchanged. Use :func:`dump` to serialise: absent
optional fields are omitted (never ``null``), while ``input``, ``output`` and ``data`` keep an
explicitly set ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.alias_generators import to_camel

ProviderMetadata: TypeAlias = dict[str, dict[str, Any]]
"""Provider metadata / options: a record of records, ``{provider: {key: JSON}}``."""

TOOL_STATES: frozenset[str] = frozenset(
    {
        "input-streaming",
        "input-available",
        "approval-requested",
        "approval-responded",
        "output-available",
        "output-error",
        "output-denied",
    }
)
"""Tool part states known to AI SDK v6/v7 (other values are accepted and kept)."""


class WireModel(BaseModel):
    """Base for every wire model: camelCase aliases, extra keys kept, nulls omitted on dump.

    Fields listed in ``_keep_null`` (``input``/``output``/``data``…) keep an explicit ``None``.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        serialize_by_alias=True,
    )

    _keep_null: ClassVar[frozenset[str]] = frozenset()
    _keep_null_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        keys = set(cls._keep_null)
        for name in cls._keep_null:
            field = cls.model_fields.get(name)
            if field is not None and field.alias:
                keys.add(field.alias)
        cls._keep_null_keys = frozenset(keys)

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        extras = self.__pydantic_extra__ or {}
        keep = self._keep_null_keys
        fields_set = self.model_fields_set
        fields = type(self).model_fields
        out: dict[str, Any] = {}
        for key, value in data.items():
            if value is None:
                if key in extras:
                    pass  # unknown keys round-trip verbatim
                elif key not in keep:
                    continue
                else:
                    name = key if key in fields else _alias_to_name(type(self), key)
                    if name not in fields_set:
                        continue
            out[key] = value
        return out


def _alias_to_name(cls: type[BaseModel], key: str) -> str:
    for name, field in cls.model_fields.items():
        if field.alias == key:
            return name
    return key


def dump(model: BaseModel) -> dict[str, Any]:
    """Serialise a wire model to a JSON-ready dict: camelCase keys, absent fields omitted."""
    result: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return result


def dump_all(models: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """Serialise each model with :func:`dump`."""
    return [dump(m) for m in models]
