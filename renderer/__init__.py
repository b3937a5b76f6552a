"""Mingpian renderer: card templates + data → card model → targets (RCS JSON, legacy, media).

Knows nothing of HTTP or the chatbot. Typical use:

    store = TemplateStore(Path("card_templates"))
    message = store.get("courier-hangup").render(data)   # validated + bound card model
    payload = to_rcs(message, get_profile("china-unicom"))
"""

from .errors import (
    DataInvalid,
    LimitExceeded,
    Problem,
    RenderError,
    TemplateInvalid,
    TemplateNotFound,
)
from .model import Brand, Card, Media, Message, Suggestion
from .profiles import DEFAULT, PROFILES, CarrierProfile, get_profile
from .rcs import BOTMESSAGE, BOTSUGGESTION, RcsPayload, to_rcs
from .templates import CardTemplate, TemplateStore

__all__ = [
    "BOTMESSAGE",
    "BOTSUGGESTION",
    "DEFAULT",
    "PROFILES",
    "Brand",
    "Card",
    "CardTemplate",
    "CarrierProfile",
    "DataInvalid",
    "LimitExceeded",
    "Media",
    "Message",
    "Problem",
    "RcsPayload",
    "RenderError",
    "Suggestion",
    "TemplateInvalid",
    "TemplateNotFound",
    "TemplateStore",
    "get_profile",
    "to_rcs",
]
