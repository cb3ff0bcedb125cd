"""Render farm: shots spread over local worker processes or a Ray cluster."""
