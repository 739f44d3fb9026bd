"""The Asterisk Manager Interface: a sans-I/O codec and an asyncio client."""

from hotline.ami.client import (
    ActionResult,
    AmiActionError,
    AmiActionTimeout,
    AmiAuthError,
    AmiClient,
    AmiConnectionLost,
    AmiError,
    AmiNotConnected,
    AmiSettings,
    Connected,
    Disconnected,
    Subscription,
    SubscriptionItem,
)
from hotline.ami.codec import (
    MAX_LINE_BYTES,
    MAX_MESSAGE_BYTES,
    AmiCodec,
    AmiProtocolError,
    Message,
    encode_action,
    encode_message,
)

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_MESSAGE_BYTES",
    "ActionResult",
    "AmiActionError",
    "AmiActionTimeout",
    "AmiAuthError",
    "AmiClient",
    "AmiCodec",
    "AmiConnectionLost",
    "AmiError",
    "AmiNotConnected",
    "AmiProtocolError",
    "AmiSettings",
    "Connected",
    "Disconnected",
    "Message",
    "Subscription",
    "SubscriptionItem",
    "encode_action",
    "encode_message",
]
