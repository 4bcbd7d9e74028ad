"""The admin side: ``/admin/api`` handlers, admin tokens, support tokens, tenant export/import."""

__all__: list[str] = []
