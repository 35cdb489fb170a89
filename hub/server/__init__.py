"""The HTTP and WebSocket edge: parse, call the Hub once, encode. `app.py` wires the objects."""
