"""Use cases. The only code that writes to the database; verbs take keyword arguments."""
