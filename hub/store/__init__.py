"""Everything that touches Redis-protocol storage: the embedded server, the group-commit writer,
the key layout and the operations on peers, inboxes, traces and idempotency keys."""
