"""Customer accounts: sign-in with Google (OpenID Connect), sessions, ``GET /api/me``.

- :mod:`~control_plane.accounts.google`: discovery, the authorization request (code flow with
  PKCE S256, state, nonce) through authlib, the code exchange, and the ID token checked against
  the provider's JWKS (PyJWT: signature, ``iss``, ``aud``, ``exp``, ``nonce``);
- :mod:`~control_plane.accounts.store`: accounts, sessions (token hashes only), sign-ins in progress;
- :mod:`~control_plane.accounts.routes`: ``/auth/google/start``, ``/auth/google/callback``,
  ``/auth/logout``, ``/api/me``.
"""

__all__: list[str] = []
