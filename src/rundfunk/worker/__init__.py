"""The long-running loops: dispatcher, scheduler and the runtime that owns them."""
