"""The web chat: ``guard`` stands in front of every request. Nothing is imported here."""
