"""Numbered SQL migrations, one folder per database (``appliance``, ``control_plane``).

Shipped as package data so installed wheels carry them; see ``appliance/store/migrate.py``.
"""
