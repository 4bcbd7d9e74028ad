"""The privacy feature as the app plugs it in (``appliance.features``): the data-subject
routes, Meta's callbacks, the retention job."""

from appliance.features import Feature
from appliance.privacy import routes, tasks

FEATURE = Feature(
    name="privacy",
    routes=[routes.ContactRightsController, routes.export_workspace_json],
    public_routes=[routes.deletion_callback, routes.deletion_status],
    register_tasks=tasks.register,
)

__all__ = ["FEATURE"]
