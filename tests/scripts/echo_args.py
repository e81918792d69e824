"""Print argv and selected environment variables as JSON, exactly as received."""

import json
import os
import sys

names = [n for n in os.environ.get("ECHO_ENV_NAMES", "").split(",") if n]
print(json.dumps({"args": sys.argv[1:], "env": {n: os.environ.get(n) for n in names}}))
