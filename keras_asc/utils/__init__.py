"""Small shared utilities (HTTP downloads, hashing)."""
