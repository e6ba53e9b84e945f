"""Building blocks shared by several first-party plugins (never registered themselves)."""
