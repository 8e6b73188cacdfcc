"""The sandbox channel: simulated phones inside Rundfunk, no platform account needed."""

from rundfunk.channels.sandbox.channel import SandboxBehaviour, SandboxChannel, SandboxPlatform

__all__ = ["SandboxBehaviour", "SandboxChannel", "SandboxPlatform"]
