"""HTTP servers for tests that need a real socket: scripted misbehaviour the emulator does not do."""
