"""Faust codecs for table values: our state objects as compact orjson documents."""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from faust.serializers import codecs

from streams.item_side import PartitionState
from streams.item_state import ItemState
from streams.trending import Tops
from streams.user_state import UserState


class _Dictable(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class StateCodec(codecs.Codec):
    """Serializes a state class through its ``to_dict`` / ``from_dict`` pair."""

    def __init__(self, cls: Any, **kwargs: Any) -> None:
        self.cls = cls
        super().__init__(cls=cls, **kwargs)

    def _dumps(self, obj: _Dictable) -> bytes:
        return orjson.dumps(obj.to_dict())

    def _loads(self, s: bytes) -> Any:
        return self.cls.from_dict(orjson.loads(s))


class OrjsonCodec(codecs.Codec):
    """Plain JSON values through orjson (faster than Faust's default json codec)."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


class StrCodec(codecs.Codec):
    """Table keys as UTF-8 text, so recovered keys are ``str`` like live ones."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, s: bytes) -> Any:
        return s.decode()


STR = "kapparec-str"
USER_STATE = "kapparec-user"
ITEM_STATE = "kapparec-item"
PARTITION_STATE = "kapparec-partition"
TOPS = "kapparec-tops"
ORJSON = "kapparec-orjson"


def register() -> None:
    """Make the codecs known to Faust by name (idempotent)."""
    codecs.register(USER_STATE, StateCodec(UserState))
    codecs.register(ITEM_STATE, StateCodec(ItemState))
    codecs.register(ORJSON, OrjsonCodec())
    codecs.register(STR, StrCodec())
    codecs.register(PARTITION_STATE, StateCodec(PartitionState))
    codecs.register(TOPS, StateCodec(Tops))
