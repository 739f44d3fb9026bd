"""FastAGI: a sans-I/O protocol module (:mod:`.protocol`) and an asyncio server (:mod:`.server`)."""
