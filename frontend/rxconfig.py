"""Reflex's configuration of the web app (``reflex run`` reads it; see troika_frontend.__main__)."""

import os

import reflex as rx

# Page state lives in this process's memory. A Redis address in the environment would make
# Reflex's production server try Redis first (and exit when it is not there).
os.environ.pop("REFLEX_REDIS_URL", None)

config = rx.Config(
    app_name="troika_frontend",
    app_module_import="troika_frontend.app",
    state_manager_mode=rx.constants.StateManagerMode.MEMORY,
    plugins=[
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(accent_color="indigo", gray_color="slate", radius="large")
        )
    ],
    disable_plugins=[rx.plugins.SitemapPlugin],
    show_built_with_reflex=False,
    telemetry_enabled=False,
)
