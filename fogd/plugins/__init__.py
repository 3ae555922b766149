"""Hookspecs (``hookspecs``), the plugin host (``host``) and fogd's built-in plugins
(``default_*`` modules, registered exactly like third-party ones)."""
