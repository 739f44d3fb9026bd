"""The IVR's "agent handling your case" (``HOTLINE_STICKY_AGENT``) survives a restart:
the resync asks Status for it and the adopted caller is offered to that agent first."""

from __future__ import annotations

import pytest

from hotline.domain.events import ChannelInfo, LineState, PbxSnapshot
from hotline.pbx.resync import STATUS_VARIABLES
from tests.routing_helpers import Pbx, agent, make_router, originates

pytestmark = pytest.mark.unit


def _waiting(uniqueid: str, number: str, variables: dict[str, str]) -> ChannelInfo:
    return ChannelInfo(
        uniqueid=uniqueid,
        channel=f"Local/{number}@callers-00000013;1",
        context="hotline-inbound",
        exten="s",
        state=LineState.UP,
        linkedid=uniqueid,
        application="Wait",
        application_data="600",
        bridge_id="",
        duration=20.0,
        number=number,
        name="Shen Er",
        variables=variables,
    )


def test_status_asks_for_the_sticky_agent() -> None:
    """The engine's Status action lists HOTLINE_STICKY_AGENT among its Variables."""
    assert "HOTLINE_STICKY_AGENT" in STATUS_VARIABLES


@pytest.mark.parametrize(("sticky", "offered"), [("2002", "2002"), (None, "2001")])
def test_an_adopted_caller_is_offered_to_their_agent_first(
    sticky: str | None, offered: str
) -> None:
    """2001 has been idle longest, so a plain adopted caller rings 2001; the caller who
    asked the IVR for 2002 rings 2002 first, as before the restart."""
    router = make_router([agent("2001"), agent("2002")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    pbx.advance(5.0)
    router.login("2002", pbx.now)
    variables = {"HOTLINE_QUEUE": "support", "HOTLINE_PRIORITY": "0"}
    if sticky:
        variables["HOTLINE_STICKY_AGENT"] = sticky
    snapshot = PbxSnapshot(
        at=pbx.now, channels=(_waiting("1795712230.43", "13900139009", variables),)
    )
    effects = router.resync(snapshot, pbx.now)
    call = router.calls["1795712230.43"]
    assert call.preferred_agent == sticky
    [offer] = originates(effects)
    assert offer.device == f"Local/{offered}@agents"
