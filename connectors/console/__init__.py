"""The web console: an aiohttp server (one `console` worker per region) that proxies and aggregates
the region's query API, the rejected-operations topic, MirrorMaker lag and task state for a browser.
Its pages are plain ES modules under static/, shipped as package data (no build step, no CDN)."""
