"""User-written detection rules: custom alert rules (spec section 5)."""
