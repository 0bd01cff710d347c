"""Render explain documents as text, JSON and self-contained HTML. Writes no files."""
