"""Audio as a stream: probe, decode to 16 kHz mono, find silences, cut into chunks, encode them compactly.

This package does file I/O and CPU work (PyAV, which bundles FFmpeg); the engines call it off the event
loop. Endpoints never import it: they decide from the facts it reports (duration, size) what to send."""
