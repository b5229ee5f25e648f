"""The ops CLI against a real server."""
