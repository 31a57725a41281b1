"""The rewrites: each takes a workflow and evidence and returns a changed document, or None."""
