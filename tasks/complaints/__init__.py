"""Complaints (四个不漏): lifecycle, intake and SLA clock; the checks flow builds on them."""
