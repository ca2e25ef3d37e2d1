"""Small helpers for the Makefile and CI (not part of the installed packages)."""
