"""Pure rules of the hub: no I/O, no event loop; time is passed in."""
