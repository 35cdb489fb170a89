"""The `repowire` command line: serve the hub, and talk to a running one."""
