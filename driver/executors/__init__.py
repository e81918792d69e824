"""The executors' driver halves, one module each; the role holds the rest of each (its
plugins/plugin_utils/executor.py says where).
"""
