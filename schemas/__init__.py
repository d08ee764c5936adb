"""Event contracts of kapparec: types, validation, the orjson codec and the dead-letter envelope."""

from schemas.codec import decode_catalog, decode_impression, decode_interaction, encode
from schemas.errors import DecodeError, KapparecError
from schemas.events import (
    INTERACTION_TYPES,
    CatalogItem,
    Impression,
    Interaction,
)

__all__ = [
    "INTERACTION_TYPES",
    "CatalogItem",
    "DecodeError",
    "Impression",
    "Interaction",
    "KapparecError",
    "decode_catalog",
    "decode_impression",
    "decode_interaction",
    "encode",
]
