"""The encrypted store: SQLCipher connections, keys, migrations and the async gateway."""

from appliance.store.gateway import Gateway
from appliance.store.workspace import Workspace, open_workspace

__all__ = ["Gateway", "Workspace", "open_workspace"]
