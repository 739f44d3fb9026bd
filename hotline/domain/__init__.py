"""The pure domain: agents, calls, offers, and the ACD router. No asyncio, no I/O."""
