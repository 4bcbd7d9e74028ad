"""Notices to every active account (policy changes), by the admin API or the CLI.

- :mod:`~control_plane.notices.service`: :class:`~control_plane.notices.service.Notices`,
  idempotent per notice id and audited;
- :mod:`~control_plane.notices.routes`: ``POST /admin/api/notices/policy-change``;
- :mod:`~control_plane.notices.cli`: ``aat-control-plane notices send-policy-change``.
"""

__all__: list[str] = []
