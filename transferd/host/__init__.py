"""The storage host: an aiohttp application that puts a Store behind the API of protocol/HTTP.md."""
