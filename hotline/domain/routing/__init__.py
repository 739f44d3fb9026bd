"""The router (the ACD), split along its concepts; see :mod:`hotline.domain.routing.router`.

``Router`` and everything the rest of the service imports from here stay importable as
``from hotline.domain.routing import ...``.
"""

from hotline.domain.routing.agents import NO_ANSWER_PAUSE, UnknownAgent
from hotline.domain.routing.offers import LEG_ID_PREFIX, offer_id_for
from hotline.domain.routing.router import Router, TicketAllocator

__all__ = [
    "LEG_ID_PREFIX",
    "NO_ANSWER_PAUSE",
    "Router",
    "TicketAllocator",
    "UnknownAgent",
    "offer_id_for",
]
