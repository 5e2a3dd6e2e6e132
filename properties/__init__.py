"""Default configuration files of the plugin (installed as package data)."""
