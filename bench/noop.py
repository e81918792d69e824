"""Does nothing: the launch-overhead benchmark's script."""
