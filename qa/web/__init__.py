"""The web chat, the only gradio importer, split by concern.

``chat`` answers questions (the chat turn, the article panel, the /ask,
/search and /documents API); ``admin`` changes the document library (upload,
rebuild, remove, behind the admin password); ``layout`` lays out the page and
wires both to it; ``server`` runs it; ``guard`` stands in front of every request.
Nothing is imported here, so ``qa --help`` stays instant.
"""
