"""The half of the Python sandbox that runs *inside* the sandbox.

These modules use the standard library only and never import ``tirl``: the worker process
loads this folder by file path (see ``launcher.BOOTSTRAP``) so that starting it costs one
interpreter start and no framework imports, and so that it works when the package itself is
not visible inside the bubblewrap mount namespace. The host imports the same files as
``tirl.tools.python_sandbox.guest`` (for the wire format and for in-process unit tests).
"""
