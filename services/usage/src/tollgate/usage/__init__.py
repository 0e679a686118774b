"""Tollgate usage service: request stream to rollups, percentiles and a request log."""
