"""Pure rules of mail delivery (no IO): see each module."""
