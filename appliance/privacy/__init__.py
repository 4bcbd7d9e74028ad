"""Data-subject rights, Meta's data-deletion callback, retention, export and teardown.

- ``erasure`` (Art. 17): a contact and everything tied to it, removed for good; the convention
  other features follow so their tables are erased too (and ``register_hook`` otherwise).
- ``contact_export`` (Art. 15, 20): one contact as one JSON document; ``objection`` (Art. 21):
  unsubscribe and stop automation. Rectification is ``PATCH /api/v1/contacts/{id}``.
- ``signed_request``, ``deletion``, ``status_page``: Meta's data-deletion and deauthorize
  callbacks, their confirmation codes and the status page.
- ``retention`` (+ ``tasks``): what is kept how long, applied by a periodic job.
- ``export`` / ``restore``: the workspace as one SQLCipher file and back (``aat-appliance export``
  / ``import``); ``json_export``: the workspace as JSON (``export-json``, ``GET
  /api/v1/workspace/export``); ``destroy``:
  crypto-shredding (``aat-appliance destroy --yes``).
- ``service``: the above as the routes and the job call them (scan on a reader, erase in one write).
"""

from appliance.features import exports_of

__all__ = ["FEATURE"]

__getattr__ = exports_of("appliance.privacy.feature", __all__)  # importing the package imports nothing
