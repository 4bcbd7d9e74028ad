"""Customer accounts: sign-in with Google (OpenID Connect) or Meta, sessions, ``GET /api/me``.

- :mod:`~control_plane.accounts.google`: discovery, the authorization request (code flow with
  PKCE S256, state, nonce) through authlib, the code exchange, and the ID token checked against
  the provider's JWKS (PyJWT: signature, ``iss``, ``aud``, ``exp``, ``nonce``);
- :mod:`~control_plane.accounts.meta`: Facebook Login through the platform app (code exchange,
  ``debug_token`` binding the token to our app, the profile with ``appsecret_proof``);
- :mod:`~control_plane.accounts.sessions`: accounts made on first sign-in (16+ confirmed), sessions, CSRF;
- :mod:`~control_plane.accounts.store`: accounts, sessions (token hashes only), sign-ins in progress;
- :mod:`~control_plane.accounts.routes`: ``/auth/google/login`` (alias ``/start``), ``/auth/google/callback``,
  ``/auth/meta/login`` (alias ``/start``), ``/auth/meta/callback``, ``/auth/logout``, ``/api/me``.
"""

__all__: list[str] = []
