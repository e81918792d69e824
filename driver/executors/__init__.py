"""The executors' driver halves, one module each; the role holds the rest of each (its
filter_plugins/executor.py says where).
"""
