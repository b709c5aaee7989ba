"""What a run plugs into, the same for both engines.

session.py   the HTTP session: connection limits, TLS (ca_bundle), the User-Agent
emulator.py  the in-process emulator for provider = "emulator" without base_url
control.py   RunControl: stop a run from another thread (or a signal)
signals.py   SIGINT/SIGTERM as a clean stop, a second one as a stop at once
"""
