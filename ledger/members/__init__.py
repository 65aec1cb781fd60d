"""Members: personal data, validated (profile.py) and sealed under each
member's own data key (vault.py)."""
