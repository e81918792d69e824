"""What each command does, as a library call: train, provision, control (status, logs, cancel, clean)."""
