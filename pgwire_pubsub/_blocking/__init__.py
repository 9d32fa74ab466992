"""The blocking driver: sockets, select, threads and signals; everything else comes from below."""
