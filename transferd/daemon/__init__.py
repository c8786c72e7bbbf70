"""The daemon: jobs under systemd, their control socket, metrics and the receiving role."""
