"""Charter's HTTP face: an OpenAI-compatible API, conversations, ops endpoints and the page."""

from charter.server.app import create_app

__all__ = ["create_app"]
