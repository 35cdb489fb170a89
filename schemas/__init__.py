"""repowire's wire contract v1: frames (schemas.frames), error codes (schemas.errors), codec,
JSON Schema and golden examples. Nothing is imported here: the agent hooks import schemas.local
and schemas.names on every tool call, and must not pay for the rest."""
