"""Domain events: what happened in the workspace, recorded with the change itself.

``emit(db, type, ...)`` inside the writer's transaction appends a row to ``events`` (ids
only); consumers (Server-Sent Events for the web app, outbound webhooks) read them in id order
with :func:`since` and remember the last id they handled. Types:

``message.created`` ``message.updated`` ``conversation.updated`` ``conversation.assigned``
``contact.created`` ``contact.updated`` ``contact.deleted`` ``flow.completed``
"""

from appliance.events.store import EVENT_TYPES, emit, latest_id, purge, since

__all__ = ["EVENT_TYPES", "emit", "since", "latest_id", "purge"]
