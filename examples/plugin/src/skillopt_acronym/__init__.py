"""An example skillopt plugin: the `acronym` environment and the `initials` model backend."""
