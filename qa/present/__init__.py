"""Presentation: an ``Answer`` or a build report as HTML for the web chat or as terminal text."""
