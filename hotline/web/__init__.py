"""The HTTP side: the aiohttp application, the JSON API and the panels."""
