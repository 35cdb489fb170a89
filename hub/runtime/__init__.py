"""The hub at run time: connections with bounded outboxes, timers and the `Hub` service."""
