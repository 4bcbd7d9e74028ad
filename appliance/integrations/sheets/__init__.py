"""Google Sheets: the connection (OAuth Connect button or a self-hoster's own client) and the
``google_sheets`` flow step (``values.append``)."""

from appliance.integrations.sheets.executor import SheetsExecutor
from appliance.integrations.sheets.routes import GoogleSheetsController, connect_router, google_callback

__all__ = ["SheetsExecutor", "GoogleSheetsController", "connect_router", "google_callback"]
