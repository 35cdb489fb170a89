"""How messages reach endpoints: the hub client SDK and (later) the tmux bridge and agent hooks.
Imports `schemas` only, never the hub's internals."""
