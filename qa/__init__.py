"""Ask questions of a collection of Chinese articles; get cited source passages.

Stages, one module each, in the order ``pipeline.py`` runs them:
load -> clean -> chunk -> embed -> index -> retrieve -> answer.
"""

__version__ = "0.1.0"
