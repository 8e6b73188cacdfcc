"""The ``rundfunk`` command line."""
