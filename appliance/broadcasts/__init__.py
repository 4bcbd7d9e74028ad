"""Broadcasts at Meta's limits: one message to a segment of contacts.

- ``models``: the API schemas; ``audience``: a segment as SQL (pure); ``policy``: whether one
  recipient gets it, and the skip reason (pure);
- ``store``: broadcasts and their state machine; ``recipients``: materialising, deciding and
  queueing recipients, pausing; ``catalogue``: the WhatsApp template catalogue (SQL only);
- ``service``: validation that needs the database, audit; ``templates``: syncing the
  catalogue from Meta; ``worker``: the task that moves broadcasts along; ``routes``: the API.

Messages go out through the outbox like every other message (its rate limiter, policy check
at send time, retries, in-doubt recovery), after agent replies and flow messages.
"""

from appliance.broadcasts.routes import BroadcastController, TemplateController
from appliance.broadcasts.worker import worker_for
from appliance.features import Feature
from appliance.runtime import Runtime

__all__ = ["FEATURE"]


def _install(runtime: Runtime) -> None:
    worker_for(runtime)


FEATURE = Feature(
    name="broadcasts",
    routes=[BroadcastController, TemplateController],
    install=_install,
    workers=lambda runtime: [worker_for(runtime).run()],
)
