"""Charter: a self-hostable constitutional AI assistant (governed, transparent, grounded)."""

__version__ = "0.1.0"
