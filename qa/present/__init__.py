"""Presentation: an ``Answer`` or a build report as JSON, as HTML for the web chat, or as terminal text."""
